//! Loading a JSON data file straight into the index, one record at a time.
//!
//! Read whole, a 1,000,000-Contact file costs its text (260 MB) plus every
//! record as a Rust value (~700 B each) before the index exists: 1.3 GB of
//! peak memory for a 150 MB index, more than a sidecar's memory limit. Here
//! the file is read through a buffer and each record is checked and indexed
//! as it is parsed, then dropped; only its links are kept until the end,
//! where they are checked against every record (R9 needs them too).
//!
//! This is the fast path, not a second definition of a valid file: the
//! checks are [`crate::model::validate`]'s, and anything it cannot take —
//! any problem at all, or a tenant whose `records` come before its
//! `objects` or `users` — makes the caller load the file whole, as before,
//! which then lists every problem or loads the unusual layout.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufReader, Read};
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::index::Snapshot;
use crate::index::tenant::{TenantBuilder, TenantIndex};
use crate::model::DataFile;
use crate::model::data::{Record, Tenant};
use crate::model::validate::{
    MAX_GROUP_OBJECT_PAIRS, MAX_TENANTS, Problem, RecordChecks, Report, tenant_objects, user_ids,
    validate,
};

/// Read buffer: large enough that reading costs a few thousand system calls
/// for a file of hundreds of megabytes.
const BUFFER_BYTES: usize = 1 << 20;

/// Why the streaming path gave up; the caller loads the file whole, which
/// either loads it or names every problem.
#[derive(Debug)]
pub struct Fallback(pub String);

/// A tenant as it was read: everything but its records, and either its
/// records already indexed (with the problems found in them), or the
/// records kept as read when they came before what indexing them needs.
struct ReadTenant {
    meta: Tenant,
    built: Option<(TenantBuilder, Report)>,
}

/// Loads the JSON data file `file` (of at most `limit` bytes, checked by
/// the caller) into a snapshot at `revision`, with the warnings to log.
pub fn load_json(
    handle: std::fs::File,
    limit: u64,
    revision: u64,
) -> Result<(Snapshot, Vec<Problem>), Fallback> {
    // A file that grew past the limit since it was checked ends early here
    // (and is refused by the whole read).
    let reader = BufReader::with_capacity(BUFFER_BYTES, handle.take(limit.saturating_add(1)));
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut tenants = Vec::new();
    FileSeed {
        tenants: &mut tenants,
    }
    .deserialize(&mut de)
    .map_err(|e| Fallback(e.to_string()))?;
    de.end().map_err(|e| Fallback(e.to_string()))?;

    // Streamed tenants' records are not in `file`: validating it checks
    // everything else, and the records kept as read.
    let (metas, mut built): (Vec<Tenant>, Vec<_>) =
        tenants.into_iter().map(|t| (t.meta, t.built)).unzip();
    let file = DataFile { tenants: metas };
    let mut report = validate(&file);
    for (_, records) in built.iter_mut().flatten() {
        report.errors.append(&mut records.errors);
        report.warnings.append(&mut records.warnings);
    }
    if let Some(first) = report.errors.first() {
        return Err(Fallback(first.to_string()));
    }
    let tenants = file
        .tenants
        .into_iter()
        .zip(built)
        .map(|(meta, built)| {
            let mut index = match built {
                Some((builder, _)) => builder.finish(&meta),
                None => TenantIndex::build(&meta),
            };
            index.stamp(revision);
            (meta.id.clone(), Arc::new(index))
        })
        .collect();
    Ok((Snapshot { revision, tenants }, report.warnings))
}

struct FileSeed<'a> {
    tenants: &'a mut Vec<ReadTenant>,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a data file")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<String>()? {
            if key != "tenants" || seen {
                return Err(de::Error::custom(format!("key '{key}'")));
            }
            seen = true;
            map.next_value_seed(TenantsSeed {
                tenants: &mut *self.tenants,
            })?;
        }
        if !seen {
            return Err(de::Error::missing_field("tenants"));
        }
        Ok(())
    }
}

struct TenantsSeed<'a> {
    tenants: &'a mut Vec<ReadTenant>,
}

impl<'de> DeserializeSeed<'de> for TenantsSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TenantsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of tenants")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(tenant) = seq.next_element_seed(TenantSeed {
            at: format!("tenants[{}]", self.tenants.len()),
        })? {
            self.tenants.push(tenant);
            // Refused here, before the rest is built (the whole read
            // names the limit).
            if self.tenants.len() > MAX_TENANTS {
                return Err(de::Error::custom("too many tenants"));
            }
        }
        Ok(())
    }
}

struct TenantSeed {
    at: String,
}

impl<'de> DeserializeSeed<'de> for TenantSeed {
    type Value = ReadTenant;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<ReadTenant, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TenantSeed {
    type Value = ReadTenant;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tenant")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReadTenant, A::Error> {
        let mut meta = Tenant::default();
        let mut built = None;
        let mut keys: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key '{key}'")));
            }
            match key.as_str() {
                "id" => meta.id = map.next_value()?,
                "email_configured" => meta.email_configured = map.next_value()?,
                "sms_configured" => meta.sms_configured = map.next_value()?,
                "objects" => meta.objects = map.next_value()?,
                "groups" => meta.groups = map.next_value()?,
                "roles" => meta.roles = map.next_value()?,
                "users" => meta.users = map.next_value()?,
                "integrations" => meta.integrations = map.next_value()?,
                "automations" => meta.automations = map.next_value()?,
                // Records need the objects and users they are checked
                // against; before them, they are kept as read.
                "records"
                    if meta.groups.len().saturating_mul(meta.objects.len() + 1)
                        > MAX_GROUP_OBJECT_PAIRS =>
                {
                    return Err(de::Error::custom("too many groups × objects"));
                }
                "records" if keys.contains("objects") && keys.contains("users") => {
                    built = Some(index_records(&mut map, &meta, &self.at)?);
                }
                "records" => meta.records = map.next_value()?,
                other => {
                    map.next_value::<IgnoredAny>()?;
                    return Err(de::Error::custom(format!("unknown key '{other}'")));
                }
            }
        }
        if !keys.contains("id") {
            return Err(de::Error::missing_field("id"));
        }
        Ok(ReadTenant { meta, built })
    }
}

/// Parses the `records` value of the tenant `meta` (at `at`, for error
/// paths) into its index.
fn index_records<'de, A: MapAccess<'de>>(
    map: &mut A,
    meta: &Tenant,
    at: &str,
) -> Result<(TenantBuilder, Report), A::Error> {
    let (parsed, indexed) = pipelined(meta, at, &[], |batches| {
        map.next_value_seed(RecordsSeed { batches })
    });
    // The indexer's own error says more than the parser's "it stopped".
    match (parsed, indexed) {
        (_, Err(why)) => Err(de::Error::custom(why)),
        (Err(e), _) => Err(e),
        (Ok(()), Ok(built)) => Ok(built),
    }
}

/// Checks and indexes a tenant's records as they come, against `meta`
/// (the tenant without its records, checked on its own with
/// [`validate`]). Stops at the first problem, which is the error: a loader
/// that wants every problem listed reads the data whole. `sizes`, when the
/// source knows them, are the records of each object to come.
pub fn index_tenant<E: fmt::Display>(
    meta: &Tenant,
    sizes: &[(String, usize)],
    records: impl Iterator<Item = Result<Record, E>>,
) -> Result<(TenantBuilder, Vec<Problem>), String> {
    let at = format!("tenant '{}'", meta.id);
    let (read, indexed) = pipelined(meta, &at, sizes, |batches| {
        for record in records {
            if batches.push(record.map_err(|e| e.to_string())?).is_err() {
                break;
            }
        }
        batches.flush();
        Ok::<(), String>(())
    });
    let (builder, report) = indexed?;
    read?;
    match report.errors.first() {
        Some(first) => Err(first.to_string()),
        None => Ok((builder, report.warnings)),
    }
}

/// Loads one tenant's snapshot (`src/source/snapshot.rs`) as a NATS-mode
/// sidecar does: its catalog checked whole, then each record decoded on
/// this thread while another checks and indexes it. The error names the
/// first problem (`permd snapshot FILE` lists them all).
pub fn index_snapshot(
    bytes: &[u8],
) -> anyhow::Result<(crate::source::snapshot::SnapshotMeta, TenantIndex)> {
    let (meta, catalog, records) = crate::source::snapshot::open(bytes)?;
    index_opened(meta, catalog, records)
}

/// As [`index_snapshot`], for a snapshot that arrives in pieces (of `size`
/// bytes in all): decoding and indexing overlap the download. The index
/// is returned only once the last piece has arrived and the checksum
/// matched.
pub fn index_snapshot_stream(
    pieces: impl Iterator<Item = crate::source::snapshot::Piece>,
    size: usize,
) -> anyhow::Result<(crate::source::snapshot::SnapshotMeta, TenantIndex)> {
    let (meta, catalog, records) = crate::source::snapshot::open_stream(pieces, size)?;
    index_opened(meta, catalog, records)
}

fn index_opened(
    meta: crate::source::snapshot::SnapshotMeta,
    catalog: Tenant,
    records: crate::source::snapshot::Records<impl Iterator<Item = crate::source::snapshot::Piece>>,
) -> anyhow::Result<(crate::source::snapshot::SnapshotMeta, TenantIndex)> {
    let one = DataFile {
        tenants: vec![catalog],
    };
    let report = validate(&one);
    if let Some(e) = report.errors.first() {
        anyhow::bail!("{} problem(s), the first: {e}", report.errors.len());
    }
    let catalog = one.tenants.into_iter().next().unwrap_or_default();
    let sizes = records.object_sizes();
    let (builder, _) = index_tenant(&catalog, &sizes, records).map_err(anyhow::Error::msg)?;
    Ok((meta, builder.finish(&catalog)))
}

/// Checks and indexes the records of several tenants, arriving in any
/// order as (tenant id, record), against `metas` (the tenants without
/// their records, validated on their own). Every problem is listed, each
/// record named by id. The builders are in the order of `metas`.
pub fn index_tenants(
    metas: &[Tenant],
    records: impl Iterator<Item = (String, Record)>,
) -> Result<(Vec<TenantBuilder>, Vec<Problem>), Vec<Problem>> {
    let objects: Vec<_> = metas.iter().map(tenant_objects).collect();
    let users: Vec<_> = metas.iter().map(user_ids).collect();
    let ats: Vec<String> = metas.iter().map(|m| format!("tenant '{}'", m.id)).collect();
    let at_of: std::collections::HashMap<&str, usize> = metas
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let mut checks: Vec<RecordChecks<'_>> = ats
        .iter()
        .zip(&objects)
        .zip(&users)
        .map(|((at, objects), users)| RecordChecks::new(at, objects, users).by_id())
        .collect();
    let mut builders: Vec<TenantBuilder> = metas.iter().map(TenantBuilder::new).collect();
    let mut errors = Vec::new();
    for (tenant, record) in records {
        let Some(&t) = at_of.get(tenant.as_str()) else {
            if errors.len() < MAX_PROBLEMS {
                errors.push(Problem {
                    path: format!("records[id={}]", record.id),
                    message: format!("tenant '{tenant}' does not exist"),
                });
            }
            continue;
        };
        let (Some(builder), Some(checks)) = (builders.get_mut(t), checks.get_mut(t)) else {
            continue;
        };
        add_checked(builder, checks, 0, &record);
    }
    let mut warnings = Vec::new();
    for (checks, builder) in checks.iter_mut().zip(&builders) {
        check_duplicates(builder, checks);
    }
    for (checks, builder) in checks.into_iter().zip(&builders) {
        let mut report = Report::default();
        checks.finish(|ids, out| builder.objects_of(ids, out), &mut report);
        errors.append(&mut report.errors);
        warnings.append(&mut report.warnings);
    }
    if errors.is_empty() {
        Ok((builders, warnings))
    } else {
        Err(errors)
    }
}

/// Most problems [`index_tenants`] lists.
const MAX_PROBLEMS: usize = 100;

/// Records go from the thread that reads them to the one that indexes
/// them in batches, a few batches queued at most. Indexed batches come
/// back to be dropped here: the records were allocated on this thread,
/// and freeing them on the one that allocated them is a local free where
/// the indexing thread's would be a cross-thread one (a tenth of its
/// time), on the loader's critical path.
struct Batches {
    sender: std::sync::mpsc::SyncSender<Vec<Record>>,
    returned: std::sync::mpsc::Receiver<Vec<Record>>,
    batch: Vec<Record>,
}

/// The indexing thread stopped (at a problem): reading can stop too.
struct Stopped;

impl Batches {
    fn push(&mut self, record: Record) -> Result<(), Stopped> {
        self.batch.push(record);
        if self.batch.len() < BATCH_RECORDS {
            return Ok(());
        }
        let mut next = None;
        while let Ok(mut done) = self.returned.try_recv() {
            done.clear();
            next = Some(done);
        }
        let next = next.unwrap_or_else(|| Vec::with_capacity(BATCH_RECORDS));
        let full = std::mem::replace(&mut self.batch, next);
        self.sender.send(full).map_err(|_| Stopped)
    }

    fn flush(&mut self) {
        let _ = self.sender.send(std::mem::take(&mut self.batch));
    }
}

/// Runs `read` on this thread, which hands records to [`Batches`], while
/// another thread checks and indexes them: reading (parsing JSON,
/// decoding a snapshot) and indexing take about as long as each other.
fn pipelined<T>(
    meta: &Tenant,
    at: &str,
    sizes: &[(String, usize)],
    read: impl FnOnce(&mut Batches) -> T,
) -> (T, Result<(TenantBuilder, Report), String>) {
    let objects = tenant_objects(meta);
    let users = user_ids(meta);
    std::thread::scope(|scope| {
        let (sender, received) = std::sync::mpsc::sync_channel::<Vec<Record>>(BATCHES_IN_FLIGHT);
        // Room for every batch that can be indexed between two of the
        // reader's drains (those queued and the one being indexed).
        let (recycle, returned) =
            std::sync::mpsc::sync_channel::<Vec<Record>>(BATCHES_IN_FLIGHT + 1);
        let worker = std::thread::Builder::new().spawn_scoped(scope, || {
            let checks = RecordChecks::new(at, &objects, &users);
            // A batch the reader no longer takes (it stopped) is dropped
            // here.
            let done = move |batch| drop(recycle.try_send(batch));
            let indexed = index_checked(meta, sizes, checks, received.into_iter(), done);
            // This thread's heap (every record it dropped) is left behind
            // when it ends: return its free pages now, while it is its own.
            if let Ok((builder, _)) = &indexed {
                crate::memory::settle_after(builder.records());
            }
            indexed
        });
        let mut batches = Batches {
            sender,
            returned,
            batch: Vec::with_capacity(BATCH_RECORDS),
        };
        // Without a thread, nothing is read: the receiver is gone, so the
        // first batch stops the reader.
        let read = read(&mut batches);
        // Hanging up ends the worker's loop.
        drop(batches);
        let indexed = match worker {
            Ok(worker) => worker
                .join()
                .unwrap_or_else(|_| Err("indexing the records failed".to_owned())),
            Err(e) => Err(format!("cannot start a thread to index the records: {e}")),
        };
        (read, indexed)
    })
}

fn index_checked(
    meta: &Tenant,
    sizes: &[(String, usize)],
    mut checks: RecordChecks<'_>,
    batches: impl Iterator<Item = Vec<Record>>,
    mut done: impl FnMut(Vec<Record>),
) -> Result<(TenantBuilder, Report), String> {
    let mut builder = TenantBuilder::new(meta);
    for (object, records) in sizes {
        builder.reserve(object, *records);
    }
    let mut r = 0;
    for batch in batches {
        for record in batch.iter().take(PREFETCH_AHEAD) {
            builder.prefetch(record);
        }
        for (i, record) in batch.iter().enumerate() {
            if let Some(ahead) = batch.get(i + PREFETCH_AHEAD) {
                builder.prefetch(ahead);
            }
            add_checked(&mut builder, &mut checks, r, record);
            r += 1;
            if let Some(first) = checks.first_error() {
                return Err(first.to_string());
            }
        }
        done(batch);
    }
    check_duplicates(&builder, &mut checks);
    if let Some(first) = checks.first_error() {
        return Err(first.to_string());
    }
    let mut report = Report::default();
    checks.finish(|ids, out| builder.objects_of(ids, out), &mut report);
    Ok((builder, report))
}

/// Ids indexed in two objects: [`TenantBuilder::add`] finds an id
/// repeated within its object at once, and leaves ids repeated across
/// objects to this one pass at the end (probing every object's table for
/// every record was a tenth of a cold start).
fn check_duplicates(builder: &TenantBuilder, checks: &mut RecordChecks<'_>) {
    for id in builder.ids_in_two_objects(MAX_PROBLEMS) {
        checks.duplicate(&id);
    }
}

/// Indexes record number `r` and checks it. Not indexed means an unknown
/// object or a repeated id, both refused by the checks, which say which.
fn add_checked(
    builder: &mut TenantBuilder,
    checks: &mut RecordChecks<'_>,
    r: usize,
    record: &Record,
) {
    let added = builder.add(record);
    checks.record(r, record, added || builder.object_of(&record.id).is_none());
}

/// How many records ahead of the one being indexed its id-table slot is
/// asked for: about one memory latency of work.
const PREFETCH_AHEAD: usize = 32;

/// Records handed to the indexing thread at a time, and batches queued.
const BATCH_RECORDS: usize = 1024;
const BATCHES_IN_FLIGHT: usize = 4;

struct RecordsSeed<'b> {
    batches: &'b mut Batches,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<Record>()? {
            self.batches
                .push(record)
                .map_err(|Stopped| de::Error::custom("the indexing thread stopped"))?;
        }
        self.batches.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};

    use rustc_hash::FxHashMap;

    use super::*;
    use crate::source::generate::{GenSpec, generate};
    use crate::source::{LoadError, load_file};

    /// Everything an index answers from, in an order that does not depend
    /// on hash seeds: two indexes with equal digests answer alike.
    fn digest(index: &TenantIndex) -> String {
        let mut out = String::new();
        let user = |u: &u32| index.users[*u as usize].clone();
        let sets = |m: &FxHashMap<u32, Arc<roaring::RoaringBitmap>>| {
            let mut v: Vec<_> = m
                .iter()
                .map(|(u, s)| (user(u), s.iter().collect::<Vec<_>>()))
                .collect();
            v.sort();
            v
        };
        for o in &index.objects {
            let ids: Vec<_> = (0..o.len() as u32)
                .map(|ord| o.ids.id(ord).unwrap())
                .collect();
            let users: Vec<Vec<String>> = (0..o.len() as u32)
                .map(|ord| o.users.get(ord).map(|u| user(&u)).collect())
                .collect();
            writeln!(out, "{} {:?} {:?} {:?}", o.name, o.fields, o.source, ids).unwrap();
            let members = |d: &crate::index::dense::DenseSet| d.iter().collect::<Vec<_>>();
            writeln!(
                out,
                "live {:?} archived {:?}",
                members(&o.live_dense),
                members(&o.archived_dense)
            )
            .unwrap();
            writeln!(
                out,
                "direct {:?} related {:?} users {users:?}",
                sets(&o.direct),
                sets(&o.related)
            )
            .unwrap();
            if let Some(c) = &o.contact {
                let mut lists: Vec<_> = c.opted_out_lists.iter().collect();
                lists.sort_by_key(|(k, _)| k.as_str());
                writeln!(
                    out,
                    "contact {:?} {:?} {:?} {:?} {:?} {:?} {lists:?} {:?}",
                    members(&c.dense.valid_email),
                    members(&c.dense.valid_mobile),
                    members(&c.dense.sms_opted_out),
                    members(&c.dense.unsubscribed_all),
                    members(&c.dense.suppressed_forever),
                    c.suppressed_until,
                    (0..o.len() as u32)
                        .map(|ord| c.status.get(ord))
                        .collect::<Vec<_>>()
                )
                .unwrap();
            }
            for id in &ids {
                writeln!(
                    out,
                    "links {id} {:?} {:?}",
                    index.links.forward(id).collect::<Vec<_>>(),
                    index.links.back(id).collect::<Vec<_>>()
                )
                .unwrap();
            }
        }
        let mut principals: Vec<String> = index
            .principals
            .iter()
            .map(|(k, p)| format!("{k:?} {:?}", p.groups))
            .collect();
        principals.sort();
        writeln!(out, "{principals:?} {:?} {:?}", index.groups, index.meta).unwrap();
        out
    }

    fn scratch(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("permd-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn stream(path: &Path) -> Result<(Snapshot, Vec<Problem>), Fallback> {
        load_json(std::fs::File::open(path).unwrap(), u64::MAX, 1)
    }

    fn assert_same(a: &Snapshot, b: &Snapshot) {
        assert_eq!(a.tenants.len(), b.tenants.len());
        for (id, t) in &a.tenants {
            assert_eq!(digest(t), digest(&b.tenants[id]), "tenant {id}");
        }
    }

    fn small_gen() -> DataFile {
        generate(&GenSpec {
            contacts: 3_000,
            ..GenSpec::default()
        })
    }

    #[test]
    fn a_streamed_file_indexes_as_the_whole_file_does() {
        let mut data = small_gen();
        data.tenants
            .push(crate::source::demo::demo_data().tenants.remove(0));
        let path = scratch("gen.json", &serde_json::to_string(&data).unwrap());
        let (streamed, warnings) = stream(&path).unwrap();
        let (whole, whole_warnings) = load_file(&path).unwrap();
        assert_same(&streamed, &Snapshot::build(&whole, 1));
        assert_eq!(warnings, whole_warnings);
        // Dangling users and links are warned about the same way.
        let mut value = serde_json::to_value(&data).unwrap();
        let records = value["tenants"][0]["records"].as_array_mut().unwrap();
        records[0]["interactions"] = serde_json::json!(["nobody-1", "nobody-2"]);
        let linking = records
            .iter_mut()
            .find(|r| r.get("links").is_some())
            .unwrap();
        let field = linking["links"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        linking["links"][&field] = serde_json::json!([uuid::Uuid::from_u128(7)]);
        let path = scratch("dangling.json", &value.to_string());
        let (streamed, warnings) = stream(&path).unwrap();
        let (whole, whole_warnings) = load_file(&path).unwrap();
        assert_same(&streamed, &Snapshot::build(&whole, 1));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(warnings, whole_warnings);
    }

    /// Past 16 objects the builder finds ids through a map, not by asking
    /// each object: same index, same refusal of a repeated id.
    #[test]
    fn a_tenant_of_many_objects_indexes_the_same_and_refuses_a_repeated_id() {
        let data = generate(&GenSpec {
            contacts: 2_000,
            custom_objects: 20,
            ..GenSpec::default()
        });
        let path = scratch("many-objects.json", &serde_json::to_string(&data).unwrap());
        let (streamed, _) = stream(&path).unwrap();
        assert_same(&streamed, &Snapshot::build(&data, 1));
        let mut value = serde_json::to_value(&data).unwrap();
        let records = value["tenants"][0]["records"].as_array_mut().unwrap();
        let custom = records
            .iter()
            .position(|r| r["object"] != "contacts")
            .unwrap();
        let contact_id = records[0]["id"].clone();
        records[custom]["id"] = contact_id;
        let path = scratch("many-objects-repeated.json", &value.to_string());
        assert!(stream(&path).is_err());
        let refused = crate::source::load_snapshot_file(&path, u64::MAX, 1)
            .err()
            .unwrap()
            .to_string();
        assert!(refused.contains("duplicate record id"), "{refused}");
    }

    /// A snapshot loads into the same index as its data does, in every
    /// format (format 2 on sizes the tables from its counts, format 3
    /// carries no addresses); an id repeated
    /// within an object or across two is refused either way.
    #[test]
    fn a_snapshot_indexes_as_its_data_and_refuses_a_repeated_id() {
        use crate::source::snapshot::{encode, encode_format};
        let data = small_gen();
        let tenant = &data.tenants[0];
        let whole = Snapshot::build(&data, 1);
        for format in 1..=crate::source::snapshot::FORMAT {
            let (meta, index) = index_snapshot(&encode_format(tenant, 1, 0, format)).unwrap();
            assert_eq!(meta.records, tenant.records.len() as u64);
            assert_eq!(
                digest(&index),
                digest(&whole.tenants[&tenant.id]),
                "format {format}"
            );
        }
        let custom = tenant
            .records
            .iter()
            .position(|r| r.object != "contacts")
            .unwrap();
        let mut across = tenant.clone();
        across.records[custom].id = across.records[0].id;
        let mut within = tenant.clone();
        within.records[1].id = within.records[0].id;
        for (name, bad) in [("across objects", across), ("within one", within)] {
            let refused = index_snapshot(&encode(&bad, 1, 0))
                .err()
                .unwrap()
                .to_string();
            assert!(
                refused.contains(&format!("duplicate record id {}", bad.records[0].id)),
                "{name}: {refused}"
            );
        }
    }

    #[test]
    fn records_before_their_objects_are_read_whole_and_index_the_same() {
        let data = small_gen();
        let mut value = serde_json::to_value(&data).unwrap();
        // Records first: serde_json keeps keys sorted unless told otherwise,
        // so build the text by hand.
        let tenant = value["tenants"][0].as_object_mut().unwrap();
        let records = tenant.remove("records").unwrap();
        let rest = serde_json::Value::Object(tenant.clone()).to_string();
        let text = format!(
            "{{\"tenants\": [{{\"records\": {records}, {}]}}",
            rest.strip_prefix('{').unwrap()
        );
        let path = scratch("records-first.json", &text);
        let (streamed, _) = stream(&path).unwrap();
        assert_same(&streamed, &Snapshot::build(&data, 1));
        let (loaded, _) = crate::source::load_snapshot_file(&path, u64::MAX, 1).unwrap();
        assert_same(&loaded, &streamed);
    }

    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;

    /// The streaming path never accepts what the whole read refuses: each
    /// of these files has one problem, and loading it gives the whole
    /// read's error, every problem listed.
    #[test]
    fn a_file_with_a_problem_gets_the_whole_reads_error() {
        let data = small_gen();
        let good = serde_json::to_value(&data).unwrap();
        let mutations: Vec<(&str, Mutation)> = vec![
            (
                "unknown record key",
                Box::new(|v| v["tenants"][0]["records"][5]["emial"] = "x".into()),
            ),
            (
                "unknown object",
                Box::new(|v| v["tenants"][0]["records"][2000]["object"] = "nope".into()),
            ),
            (
                "repeated id",
                Box::new(|v| {
                    let id = v["tenants"][0]["records"][1]["id"].clone();
                    v["tenants"][0]["records"][2500]["id"] = id;
                }),
            ),
            (
                "owner on a contact",
                Box::new(|v| v["tenants"][0]["records"][3]["owner"] = "u1".into()),
            ),
            (
                "unknown team field",
                Box::new(|v| {
                    v["tenants"][0]["records"][4]["teams"] = serde_json::json!({"nope": ["u1"]})
                }),
            ),
            (
                "link to the wrong object",
                Box::new(|v| {
                    let records = v["tenants"][0]["records"].as_array_mut().unwrap();
                    let target =
                        records.iter().find(|r| r["object"] != "contacts").unwrap()["id"].clone();
                    let linking = records
                        .iter_mut()
                        .find(|r| r.get("links").is_some())
                        .unwrap();
                    let field = linking["links"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .next()
                        .unwrap()
                        .clone();
                    let kind = linking["object"].clone();
                    linking["links"][&field] = serde_json::json!([target]);
                    assert_ne!(kind, serde_json::Value::Null);
                }),
            ),
            (
                "unknown tenant key",
                Box::new(|v| v["tenants"][0]["userz"] = serde_json::json!([])),
            ),
            (
                "bad group",
                Box::new(|v| {
                    v["tenants"][0]["groups"][0]["objects"]["contacts"]["associated_records"] =
                        "none".into()
                }),
            ),
            (
                "duplicate tenant",
                Box::new(|v| {
                    let t = v["tenants"][0].clone();
                    v["tenants"].as_array_mut().unwrap().push(t);
                }),
            ),
            ("not JSON at the end", Box::new(|_| {})),
        ];
        for (name, mutate) in mutations {
            let mut value = good.clone();
            mutate(&mut value);
            let mut text = value.to_string();
            if name == "not JSON at the end" {
                text.push_str(" {");
            }
            let path = scratch("bad.json", &text);
            assert!(stream(&path).is_err(), "{name}: streamed load accepted it");
            let whole = load_file(&path)
                .err()
                .unwrap_or_else(|| panic!("{name}: the whole read accepted it"));
            let loaded = crate::source::load_snapshot_file(&path, u64::MAX, 1)
                .err()
                .unwrap();
            assert_eq!(loaded.to_string(), whole.to_string(), "{name}");
            assert!(
                matches!(loaded, LoadError::Invalid { .. } | LoadError::Parse { .. }),
                "{name}: {loaded}"
            );
        }
    }
}
