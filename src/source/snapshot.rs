//! A tenant snapshot: one tenant's whole data at one changelog revision, in
//! a compact binary form that a NATS-mode sidecar loads instead of reading
//! PostgreSQL (docs/fleet.md). The relay writes them to a JetStream object
//! store; a sidecar starts from them and follows the stream from `revision`.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "PERMDSNP"  u32 format  u64 revision  u64 stream_seq  u64 records
//! u32 catalog_len  catalog: the tenant without records, as data-file JSON
//! strings: postcard Vec<String>, the names records refer to by index
//! counts (format 2 and later): postcard Vec<(u32, u64)>, each object (by
//!   name index) with its number of records
//! records: `records` postcard-encoded records, one after the other
//! u32 CRC-32 of every byte before it
//! ```
//!
//! The counts let a loader size each object's id table once instead of
//! growing it as records arrive (rehashing a million-record table several
//! times is a tenth of a cold start); the decoder holds the records to
//! them exactly. Format 1 has no counts and is still read.
//!
//! Format 3 carries what permissions read of a Contact and nothing more:
//! whether it has a valid email address and a valid mobile number (R13,
//! R14), not the address and the number themselves, and its opted-out
//! lists as interned names. A snapshot is only ever indexed, so the
//! answers are the same; it is 40% smaller (a million Contacts download
//! and decode that much faster) and every sidecar no longer holds a copy
//! of every address. A decoded format 3 Contact with a valid address has
//! [`ADDRESS_NOT_CARRIED`] in its place. Formats 1 and 2 are still read.
//!
//! Records are the bulk (a million Contacts), so they are postcard with
//! their repeated names (objects, users, team and relationship fields)
//! interned; the catalog is small and keeps the data-file decoder, with its
//! unknown-key and duplicate-key refusals. The decoder checks the magic and
//! the format before anything else, never trusts a length, and refuses
//! rather than guesses: a snapshot it cannot read is reloaded, never served
//! half-read. A snapshot held whole has its checksum checked first too; one
//! that arrives in pieces ([`open_stream`], a sidecar's download) is
//! decoded as it arrives and its checksum checked after the last record,
//! before the caller may use what it indexed. Decoding does not validate
//! the data: the caller validates the tenant exactly as it would a data
//! file.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::data::{ContactState, EmailStatus, Record, Teams, Tenant, from_json_str};

const MAGIC: &[u8; 8] = b"PERMDSNP";
/// The format this build writes by default, and the newest it reads. A
/// new format gets a new number; a sidecar refuses a snapshot newer than
/// it knows (and reads every older one), so a fleet upgrades its sidecars
/// before its relays, or runs the new relays with `--snapshot-format` of
/// the oldest sidecar until every sidecar is upgraded.
pub const FORMAT: u32 = 3;
/// The oldest format this build reads and writes.
pub const OLDEST_FORMAT: u32 = 1;
const HEADER_BYTES: usize = 8 + 4 + 8 + 8 + 8 + 4;
const CHECKSUM_BYTES: usize = 4;
/// The smallest encoded record (an id and a few zero bytes): caps how much
/// a record count read from the header may pre-allocate.
const MIN_RECORD_BYTES: usize = 20;

/// What a snapshot says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub tenant: String,
    /// The changelog revision the data is at.
    pub revision: u64,
    /// The JetStream sequence of the last message of `revision` in the
    /// change stream (0 when the stream held none): a sidecar follows the
    /// stream from the message after it.
    pub stream_seq: u64,
    pub records: u64,
    pub bytes: usize,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("not a permd snapshot (no PERMDSNP header)")]
    NotASnapshot,
    #[error(
        "snapshot format {0} is newer than this permd reads (format {FORMAT}); upgrade permd, or have the relay write format {FORMAT}"
    )]
    NewerFormat(u32),
    #[error("snapshot is truncated: {0}")]
    Truncated(&'static str),
    #[error(
        "snapshot checksum mismatch (stored {stored:08x}, computed {computed:08x}): it was damaged in storage or transit"
    )]
    Checksum { stored: u32, computed: u32 },
    #[error("snapshot {part} does not decode: {message}")]
    Corrupt { part: &'static str, message: String },
    #[error("snapshot could not be read: {0}")]
    Unreadable(String),
}

fn corrupt(part: &'static str, message: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Corrupt {
        part,
        message: message.to_string(),
    }
}

/// What a format 3 snapshot holds in place of a valid email address or
/// mobile number: the decoded Contact has one (R13, R14), not which.
pub const ADDRESS_NOT_CARRIED: &str = "(not carried in snapshots)";

/// A record with its names replaced by indexes into the string table;
/// its Contact state is [`WireContact`] up to format 2, [`WireContact3`]
/// from format 3.
#[derive(Serialize, Deserialize)]
struct WireRecord<C> {
    id: [u8; 16],
    object: u32,
    owner: Option<u32>,
    teams: Vec<(u32, Vec<u32>)>,
    interactions: Vec<u32>,
    links: Vec<(u32, Vec<[u8; 16]>)>,
    archived: bool,
    contact: Option<C>,
}

impl<C> WireRecord<C> {
    fn with_contact<D>(self, contact: Option<D>) -> WireRecord<D> {
        WireRecord {
            id: self.id,
            object: self.object,
            owner: self.owner,
            teams: self.teams,
            interactions: self.interactions,
            links: self.links,
            archived: self.archived,
            contact,
        }
    }
}

/// A Contact's state in formats 1 and 2: as written.
#[derive(Serialize, Deserialize)]
struct WireContact {
    email: Option<String>,
    email_valid: bool,
    email_status: u8,
    suppressed: bool,
    /// Unix time in nanoseconds.
    suppressed_until: Option<i128>,
    opted_out_lists: Vec<String>,
    mobile_phone: Option<String>,
    mobile_valid: bool,
    sms_opted_out: bool,
}

/// A Contact's state from format 3: what permissions read of it.
#[derive(Serialize, Deserialize)]
struct WireContact3 {
    valid_email: bool,
    email_status: u8,
    suppressed: bool,
    /// Unix time in nanoseconds.
    suppressed_until: Option<i128>,
    /// Names, by index into the string table.
    opted_out_lists: Vec<u32>,
    valid_mobile: bool,
    sms_opted_out: bool,
}

/// The Contact state a format 3 snapshot keeps of `c`: equal answers,
/// no address or number. What [`decode`] returns for format 3.
pub fn as_carried(c: &ContactState) -> ContactState {
    ContactState {
        email: carried(c.has_valid_email()),
        email_valid: c.has_valid_email(),
        mobile_phone: carried(c.has_valid_mobile()),
        mobile_valid: c.has_valid_mobile(),
        ..c.clone()
    }
}

/// `tenant` as a format 3 snapshot carries it: every Contact
/// [`as_carried`].
pub fn tenant_as_carried(tenant: &Tenant) -> Tenant {
    let mut carried = tenant.clone();
    for r in &mut carried.records {
        r.contact = r.contact.as_ref().map(as_carried);
    }
    carried
}

/// What format 3 holds of an address or number: whether it is there and
/// valid.
fn carried(valid: bool) -> Option<String> {
    valid.then(|| ADDRESS_NOT_CARRIED.to_owned())
}

/// Interns names while encoding.
#[derive(Default)]
struct Strings {
    index: FxHashMap<String, u32>,
    list: Vec<String>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = u32::try_from(self.list.len()).unwrap_or(u32::MAX);
        self.index.insert(s.to_owned(), i);
        self.list.push(s.to_owned());
        i
    }
}

/// Encodes `tenant` at `revision` in the newest format; `stream_seq` is
/// where its sidecars follow the change stream from.
pub fn encode(tenant: &Tenant, revision: u64, stream_seq: u64) -> Vec<u8> {
    encode_format(tenant, revision, stream_seq, FORMAT)
}

/// As [`encode`], in `format` (clamped to the formats this build writes).
pub fn encode_format(tenant: &Tenant, revision: u64, stream_seq: u64, format: u32) -> Vec<u8> {
    let format = format.clamp(OLDEST_FORMAT, FORMAT);
    let catalog = serde_json::to_vec(&tenant.clone_without_records()).unwrap_or_default();
    let mut strings = Strings::default();
    let mut records: Vec<u8> = Vec::with_capacity(tenant.records.len() * 48);
    // Per object (by name index), in the order objects first appear.
    let mut counts: Vec<(u32, u64)> = Vec::new();
    let mut count_at: FxHashMap<u32, usize> = FxHashMap::default();
    for r in &tenant.records {
        let object = strings.id(&r.object);
        let at = *count_at.entry(object).or_insert_with(|| {
            counts.push((object, 0));
            counts.len() - 1
        });
        if let Some((_, n)) = counts.get_mut(at) {
            *n += 1;
        }
        let wire: WireRecord<()> = WireRecord {
            id: *r.id.as_bytes(),
            object,
            owner: r.owner.as_deref().map(|o| strings.id(o)),
            teams: r
                .teams
                .iter()
                .map(|(field, users)| {
                    (
                        strings.id(field),
                        users.iter().map(|u| strings.id(u)).collect(),
                    )
                })
                .collect(),
            interactions: r.interactions.iter().map(|u| strings.id(u)).collect(),
            links: r
                .links
                .iter()
                .map(|(field, ids)| {
                    (
                        strings.id(field),
                        ids.iter().map(|id| *id.as_bytes()).collect(),
                    )
                })
                .collect(),
            archived: r.archived,
            contact: None,
        };
        // Writing into a Vec cannot fail.
        records = if format >= 3 {
            let contact = r.contact.as_ref().map(|c| WireContact3 {
                valid_email: c.has_valid_email(),
                email_status: status_code(c.email_status),
                suppressed: c.suppressed,
                suppressed_until: c.suppressed_until.map(OffsetDateTime::unix_timestamp_nanos),
                opted_out_lists: c.opted_out_lists.iter().map(|l| strings.id(l)).collect(),
                valid_mobile: c.has_valid_mobile(),
                sms_opted_out: c.sms_opted_out,
            });
            postcard::to_extend(&wire.with_contact(contact), records)
        } else {
            let contact = r.contact.as_ref().map(|c| WireContact {
                email: c.email.clone(),
                email_valid: c.email_valid,
                email_status: status_code(c.email_status),
                suppressed: c.suppressed,
                suppressed_until: c.suppressed_until.map(OffsetDateTime::unix_timestamp_nanos),
                opted_out_lists: c.opted_out_lists.clone(),
                mobile_phone: c.mobile_phone.clone(),
                mobile_valid: c.mobile_valid,
                sms_opted_out: c.sms_opted_out,
            });
            postcard::to_extend(&wire.with_contact(contact), records)
        }
        .unwrap_or_default();
    }
    let strings = postcard::to_stdvec(&strings.list).unwrap_or_default();
    let counts = if format >= 2 {
        postcard::to_stdvec(&counts).unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(
        HEADER_BYTES + catalog.len() + strings.len() + counts.len() + records.len() + 4,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&stream_seq.to_le_bytes());
    out.extend_from_slice(&(tenant.records.len() as u64).to_le_bytes());
    out.extend_from_slice(
        &u32::try_from(catalog.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&catalog);
    out.extend_from_slice(&strings);
    out.extend_from_slice(&counts);
    out.extend_from_slice(&records);
    let checksum = crc32fast::hash(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// Recomputes the checksum of a snapshot whose bytes were edited: for
/// tools, and for the fuzzer, whose mutations would otherwise all stop at
/// the checksum and never reach the decoder behind it.
pub fn reseal(bytes: &mut [u8]) {
    if let Some(content_len) = bytes.len().checked_sub(CHECKSUM_BYTES)
        && bytes.len() >= HEADER_BYTES + CHECKSUM_BYTES
    {
        let (content, stored) = bytes.split_at_mut(content_len);
        stored.copy_from_slice(&crc32fast::hash(content).to_le_bytes());
    }
}

/// Reads the header only (after checking the checksum): what the snapshot
/// is, without decoding its records.
pub fn meta(bytes: &[u8]) -> Result<SnapshotMeta, SnapshotError> {
    verify(bytes)?;
    let mut input = Incoming::new(whole(bytes));
    read_format(&mut input)?;
    let (header, catalog) = read_header(&mut input)?;
    Ok(header.meta(catalog.id, bytes.len()))
}

/// Decodes a snapshot into its tenant.
pub fn decode(bytes: &[u8]) -> Result<(SnapshotMeta, Tenant), SnapshotError> {
    let (meta, mut tenant, records) = open(bytes)?;
    // A header's count is not trusted to size memory: at most what the
    // bytes could hold.
    let mut list = Vec::with_capacity(records.len().min(bytes.len() / MIN_RECORD_BYTES));
    for record in records {
        list.push(record?);
    }
    tenant.records = list;
    Ok((meta, tenant))
}

/// Opens a snapshot held whole: its header, its tenant without records,
/// and the records to decode one at a time (a loader indexes each and
/// drops it, never holding them all). Magic, format and checksum are
/// checked before anything is decoded.
pub fn open(
    bytes: &[u8],
) -> Result<
    (
        SnapshotMeta,
        Tenant,
        Records<impl Iterator<Item = Piece> + '_>,
    ),
    SnapshotError,
> {
    verify(bytes)?;
    open_stream(whole(bytes), bytes.len())
}

/// A snapshot held whole, as pieces.
fn whole(bytes: &[u8]) -> impl Iterator<Item = Piece> + '_ {
    bytes.chunks(PIECE_BYTES).map(|piece| Ok(piece.to_vec()))
}

/// One piece of a snapshot's bytes as they arrive, or why the rest cannot
/// be read (a download that failed).
pub type Piece = Result<Vec<u8>, SnapshotError>;

/// The pieces a snapshot held whole is decoded in: the buffer a record
/// is decoded from stays this small.
const PIECE_BYTES: usize = 1 << 20;

/// Opens a snapshot that arrives in pieces (a download from the object
/// store, of `size` bytes as its metadata says), so that decoding overlaps
/// the transfer. Magic and format are checked first; the checksum covers
/// every byte and is checked once the last one has arrived, after the last
/// record: a loader must not serve what it indexed until the iterator has
/// ended without an error. Decoding bytes not yet checked is safe: the
/// decoder never trusts a length, and a decode error in a damaged snapshot
/// is reported as the damage (the checksum mismatch).
pub fn open_stream<I: Iterator<Item = Piece>>(
    pieces: I,
    size: usize,
) -> Result<(SnapshotMeta, Tenant, Records<I>), SnapshotError> {
    let mut input = Incoming::new(pieces);
    let format = read_format(&mut input)?;
    let (header, tenant) = match read_header(&mut input) {
        Ok(read) => read,
        Err(e) => return Err(input.damaged_or(e)),
    };
    let opened = (|| {
        if !tenant.records.is_empty() {
            return Err(corrupt("catalog", "records belong in the record section"));
        }
        let strings: Vec<String> = input.postcard("string table")?;
        let left = usize::try_from(header.records).map_err(|e| corrupt("header", e))?;
        let counts = if format >= 2 {
            let counts: Vec<(u32, u64)> = input.postcard("object counts")?;
            Some(object_counts(&strings, counts, left)?)
        } else {
            None
        };
        Ok((strings, left, counts))
    })();
    let (strings, left, counts) = match opened {
        Ok(opened) => opened,
        Err(e) => return Err(input.damaged_or(e)),
    };
    let meta = header.meta(tenant.id.clone(), size);
    let seen = vec![0; counts.as_ref().map_or(0, |_| strings.len())];
    Ok((
        meta,
        tenant,
        Records {
            input,
            size,
            strings,
            left,
            done: false,
            counts,
            seen,
            format,
        },
    ))
}

/// A snapshot's bytes as they arrive: those not decoded yet, the checksum
/// of every byte so far, and the newest four held back (they are the
/// stored checksum once nothing follows them).
struct Incoming<I> {
    pieces: I,
    buf: Vec<u8>,
    /// Where the undecoded bytes of `buf` start.
    at: usize,
    hasher: crc32fast::Hasher,
    held: Vec<u8>,
    ended: bool,
}

impl<I: Iterator<Item = Piece>> Incoming<I> {
    fn new(pieces: I) -> Self {
        Incoming {
            pieces,
            buf: Vec::new(),
            at: 0,
            hasher: crc32fast::Hasher::new(),
            held: Vec::with_capacity(2 * CHECKSUM_BYTES),
            ended: false,
        }
    }

    fn undecoded(&self) -> &[u8] {
        self.buf.get(self.at..).unwrap_or_default()
    }

    /// Adds the next piece to the undecoded bytes; false once there is
    /// none.
    fn fill(&mut self) -> Result<bool, SnapshotError> {
        if self.ended {
            return Ok(false);
        }
        let Some(piece) = self.pieces.next() else {
            self.ended = true;
            return Ok(false);
        };
        let piece = piece?;
        // Decoded bytes are dropped: the buffer holds about one piece.
        self.buf.drain(..self.at.min(self.buf.len()));
        self.at = 0;
        let (body, last) = if piece.len() >= CHECKSUM_BYTES {
            // What was held back is not the end after all.
            self.hasher.update(&self.held);
            self.buf.extend_from_slice(&self.held);
            self.held.clear();
            piece.split_at(piece.len() - CHECKSUM_BYTES)
        } else {
            self.held.extend_from_slice(&piece);
            let keep = self.held.len().saturating_sub(CHECKSUM_BYTES);
            let body: Vec<u8> = self.held.drain(..keep).collect();
            self.hasher.update(&body);
            self.buf.extend_from_slice(&body);
            return Ok(true);
        };
        self.hasher.update(body);
        self.buf.extend_from_slice(body);
        self.held.extend_from_slice(last);
        Ok(true)
    }

    /// The next `n` bytes, taken.
    fn take(&mut self, n: usize, part: &'static str) -> Result<Vec<u8>, SnapshotError> {
        while self.undecoded().len() < n {
            if !self.fill()? {
                return Err(SnapshotError::Truncated(part));
            }
        }
        let bytes = self
            .undecoded()
            .get(..n)
            .ok_or(SnapshotError::Truncated(part))?
            .to_vec();
        self.at += n;
        Ok(bytes)
    }

    fn u32(&mut self, part: &'static str) -> Result<u32, SnapshotError> {
        let b = self.take(4, part)?;
        Ok(u32::from_le_bytes(
            b.try_into().map_err(|_| SnapshotError::Truncated(part))?,
        ))
    }

    fn u64(&mut self, part: &'static str) -> Result<u64, SnapshotError> {
        let b = self.take(8, part)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| SnapshotError::Truncated(part))?,
        ))
    }

    /// Decodes one postcard value, adding pieces until it is whole.
    fn postcard<T: serde::de::DeserializeOwned>(
        &mut self,
        part: &'static str,
    ) -> Result<T, SnapshotError> {
        loop {
            let undecoded = self.undecoded().len();
            match postcard::take_from_bytes::<T>(self.undecoded()).map(|(v, rest)| (v, rest.len()))
            {
                Ok((value, rest)) => {
                    self.at += undecoded - rest;
                    return Ok(value);
                }
                Err(postcard::Error::DeserializeUnexpectedEnd) => {
                    if !self.fill()? {
                        return Err(corrupt(part, postcard::Error::DeserializeUnexpectedEnd));
                    }
                }
                Err(e) => return Err(corrupt(part, e)),
            }
        }
    }

    /// Reads to the end and checks the checksum; how many bytes were left
    /// undecoded.
    fn finish(&mut self) -> Result<usize, SnapshotError> {
        let mut left = 0;
        loop {
            // Counted, then dropped by the next fill.
            left += self.undecoded().len();
            self.at = self.buf.len();
            if !self.fill()? {
                break;
            }
        }
        let stored = <[u8; CHECKSUM_BYTES]>::try_from(self.held.as_slice())
            .map_err(|_| SnapshotError::Truncated("shorter than its header"))?;
        let stored = u32::from_le_bytes(stored);
        let computed = self.hasher.clone().finalize();
        if stored != computed {
            return Err(SnapshotError::Checksum { stored, computed });
        }
        Ok(left)
    }

    /// `error`, or the checksum mismatch that explains it: a damaged
    /// snapshot is reported as damaged, not by where decoding stopped.
    fn damaged_or(&mut self, error: SnapshotError) -> SnapshotError {
        if matches!(error, SnapshotError::Unreadable(_)) {
            return error;
        }
        match self.finish() {
            Err(damage @ (SnapshotError::Checksum { .. } | SnapshotError::Unreadable(_))) => damage,
            _ => error,
        }
    }
}

/// Format 2's per-object counts, checked: each names an object once, and
/// together they are the header's record count.
fn object_counts(
    strings: &[String],
    counts: Vec<(u32, u64)>,
    records: usize,
) -> Result<Vec<(u32, usize)>, SnapshotError> {
    let mut total = 0usize;
    let mut out: Vec<(u32, usize)> = Vec::with_capacity(counts.len());
    let mut counted = vec![false; strings.len()];
    for (name, count) in counts {
        let Some(seen) = counted.get_mut(name as usize) else {
            return Err(corrupt(
                "object counts",
                format!("name index {name} is past the {} names", strings.len()),
            ));
        };
        if std::mem::replace(seen, true) {
            return Err(corrupt("object counts", "an object is counted twice"));
        }
        let count = usize::try_from(count).map_err(|e| corrupt("object counts", e))?;
        total = total
            .checked_add(count)
            .ok_or_else(|| corrupt("object counts", "the counts overflow"))?;
        out.push((name, count));
    }
    if total != records {
        return Err(corrupt(
            "object counts",
            format!("they add up to {total} records, the header says {records}"),
        ));
    }
    Ok(out)
}

/// A snapshot's records, decoded as they are asked for; after the last
/// one, an error if bytes are left over or the checksum does not match.
/// Stops at the first error.
pub struct Records<I> {
    input: Incoming<I>,
    /// The snapshot's bytes in all, as declared.
    size: usize,
    strings: Vec<String>,
    left: usize,
    done: bool,
    /// Format 2: the records of each object (by name index), as the
    /// snapshot declares them; `seen` counts them as they are decoded.
    counts: Option<Vec<(u32, usize)>>,
    seen: Vec<usize>,
    /// How records are encoded (format 3: [`WireContact3`]).
    format: u32,
}

impl<I: Iterator<Item = Piece>> Records<I> {
    /// How many records the header says are left.
    pub fn len(&self) -> usize {
        self.left
    }

    /// How many records each object has (format 2; empty for format 1),
    /// for sizing its tables before they arrive. At most as many in all
    /// as the snapshot's bytes could hold: forged counts size nothing
    /// large (they are checked against the records only as these are
    /// decoded).
    pub fn object_sizes(&self) -> Vec<(String, usize)> {
        let mut room = self.size / MIN_RECORD_BYTES;
        let mut sizes = Vec::new();
        for &(name, n) in self.counts.iter().flatten() {
            let Some(object) = self.strings.get(name as usize) else {
                continue;
            };
            let n = n.min(room);
            room -= n;
            sizes.push((object.clone(), n));
        }
        sizes
    }

    /// After the last record: each object had the records its count says.
    fn check_counts(&self) -> Result<(), SnapshotError> {
        let Some(counts) = &self.counts else {
            return Ok(());
        };
        // By name index: one pass over each, however many objects.
        let mut declared = vec![0usize; self.seen.len()];
        for &(name, count) in counts {
            if let Some(d) = declared.get_mut(name as usize) {
                *d = count;
            }
        }
        for ((name, seen), declared) in self.seen.iter().enumerate().zip(declared) {
            if declared != *seen {
                return Err(corrupt(
                    "object counts",
                    format!(
                        "'{}' has {seen} records, its count says {declared}",
                        self.strings.get(name).map_or("?", String::as_str)
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    fn contact3(&self, c: &WireContact3) -> Result<ContactState, SnapshotError> {
        Ok(ContactState {
            email: carried(c.valid_email),
            email_valid: c.valid_email,
            email_status: status_from_code(c.email_status)?,
            suppressed: c.suppressed,
            suppressed_until: instant(c.suppressed_until)?,
            opted_out_lists: c
                .opted_out_lists
                .iter()
                .map(|l| self.name(*l))
                .collect::<Result<_, _>>()?,
            mobile_phone: carried(c.valid_mobile),
            mobile_valid: c.valid_mobile,
            sms_opted_out: c.sms_opted_out,
        })
    }

    fn name(&self, i: u32) -> Result<String, SnapshotError> {
        self.strings.get(i as usize).cloned().ok_or_else(|| {
            corrupt(
                "records",
                format!("name index {i} is past the {} names", self.strings.len()),
            )
        })
    }

    fn next_record(&mut self) -> Result<Record, SnapshotError> {
        let (w, contact) = if self.format >= 3 {
            let w: WireRecord<WireContact3> = self.input.postcard("records")?;
            let contact = w.contact.as_ref().map(|c| self.contact3(c)).transpose()?;
            (w.with_contact::<()>(None), contact)
        } else {
            let mut w: WireRecord<WireContact> = self.input.postcard("records")?;
            let contact = w.contact.take().map(contact2).transpose()?;
            (w.with_contact::<()>(None), contact)
        };
        if let Some(seen) = self.seen.get_mut(w.object as usize) {
            *seen += 1;
        }
        let mut teams: Vec<(String, Vec<String>)> = Vec::with_capacity(w.teams.len());
        for (field, users) in w.teams {
            let users = users
                .into_iter()
                .map(|u| self.name(u))
                .collect::<Result<Vec<_>, _>>()?;
            teams.push((self.name(field)?, users));
        }
        let mut links = std::collections::BTreeMap::new();
        for (field, ids) in w.links {
            if links
                .insert(
                    self.name(field)?,
                    ids.into_iter().map(Uuid::from_bytes).collect(),
                )
                .is_some()
            {
                return Err(corrupt("records", "a relationship field is listed twice"));
            }
        }
        Ok(Record {
            id: Uuid::from_bytes(w.id),
            object: self.name(w.object)?,
            owner: w.owner.map(|o| self.name(o)).transpose()?,
            teams: Teams::from_sorted(teams).map_err(|e| corrupt("records", e))?,
            interactions: w
                .interactions
                .into_iter()
                .map(|u| self.name(u))
                .collect::<Result<_, _>>()?,
            links,
            archived: w.archived,
            contact,
        })
    }
}

impl<I: Iterator<Item = Piece>> Iterator for Records<I> {
    type Item = Result<Record, SnapshotError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            return match self.input.finish() {
                Err(e) => Some(Err(e)),
                Ok(0) => self.check_counts().err().map(Err),
                Ok(extra) => Some(Err(corrupt(
                    "records",
                    format!("{extra} bytes after the last record"),
                ))),
            };
        }
        self.left -= 1;
        let record = self.next_record();
        if let Err(e) = record {
            self.done = true;
            return Some(Err(self.input.damaged_or(e)));
        }
        Some(record)
    }
}

/// What the fixed header and the catalog say.
struct Header {
    revision: u64,
    stream_seq: u64,
    records: u64,
}

impl Header {
    fn meta(&self, tenant: String, bytes: usize) -> SnapshotMeta {
        SnapshotMeta {
            tenant,
            revision: self.revision,
            stream_seq: self.stream_seq,
            records: self.records,
            bytes,
        }
    }
}

/// The magic and the format number: checked before anything else.
fn read_format<I: Iterator<Item = Piece>>(input: &mut Incoming<I>) -> Result<u32, SnapshotError> {
    match input.take(MAGIC.len(), "magic") {
        Ok(magic) if magic == MAGIC => {}
        _ => return Err(SnapshotError::NotASnapshot),
    }
    let format = input.u32("header")?;
    if format > FORMAT {
        return Err(SnapshotError::NewerFormat(format));
    }
    if format < OLDEST_FORMAT {
        return Err(corrupt("header", format!("format {format}")));
    }
    Ok(format)
}

/// The rest of the fixed header, then the catalog (the tenant without
/// records).
fn read_header<I: Iterator<Item = Piece>>(
    input: &mut Incoming<I>,
) -> Result<(Header, Tenant), SnapshotError> {
    let header = Header {
        revision: input.u64("header")?,
        stream_seq: input.u64("header")?,
        records: input.u64("header")?,
    };
    let catalog_len = input.u32("header")? as usize;
    let catalog = input.take(catalog_len, "catalog")?;
    let text = std::str::from_utf8(&catalog).map_err(|e| corrupt("catalog", e))?;
    let tenant: Tenant =
        from_json_str(text).map_err(|(at, e)| corrupt("catalog", format!("{at}: {e}")))?;
    Ok((header, tenant))
}

/// Checks magic, format and checksum of a snapshot held whole, before
/// any of it is decoded.
fn verify(bytes: &[u8]) -> Result<(), SnapshotError> {
    if bytes.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err(SnapshotError::NotASnapshot);
    }
    let format = bytes
        .get(MAGIC.len()..MAGIC.len() + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(SnapshotError::Truncated("header"))?;
    if format > FORMAT {
        return Err(SnapshotError::NewerFormat(format));
    }
    if format < OLDEST_FORMAT {
        return Err(corrupt("header", format!("format {format}")));
    }
    if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES {
        return Err(SnapshotError::Truncated("shorter than its header"));
    }
    let (content, stored) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    let stored = u32::from_le_bytes(
        stored
            .try_into()
            .map_err(|_| SnapshotError::Truncated("checksum"))?,
    );
    let computed = crc32fast::hash(content);
    if stored != computed {
        return Err(SnapshotError::Checksum { stored, computed });
    }
    Ok(())
}

/// A Contact's state as formats 1 and 2 write it.
fn contact2(c: WireContact) -> Result<ContactState, SnapshotError> {
    Ok(ContactState {
        email: c.email,
        email_valid: c.email_valid,
        email_status: status_from_code(c.email_status)?,
        suppressed: c.suppressed,
        suppressed_until: instant(c.suppressed_until)?,
        opted_out_lists: c.opted_out_lists,
        mobile_phone: c.mobile_phone,
        mobile_valid: c.mobile_valid,
        sms_opted_out: c.sms_opted_out,
    })
}

/// A suppression's end, as Unix nanoseconds.
fn instant(nanos: Option<i128>) -> Result<Option<OffsetDateTime>, SnapshotError> {
    nanos
        .map(OffsetDateTime::from_unix_timestamp_nanos)
        .transpose()
        .map_err(|e| corrupt("records", e))
}

/// The email status as stored in format 1: these numbers are the format.
fn status_code(s: EmailStatus) -> u8 {
    match s {
        EmailStatus::NotOptedIn => 0,
        EmailStatus::OptedIn => 1,
        EmailStatus::OptedOut => 2,
        EmailStatus::UnsubscribedAll => 3,
        EmailStatus::Suppressed => 4,
    }
}

fn status_from_code(code: u8) -> Result<EmailStatus, SnapshotError> {
    Ok(match code {
        0 => EmailStatus::NotOptedIn,
        1 => EmailStatus::OptedIn,
        2 => EmailStatus::OptedOut,
        3 => EmailStatus::UnsubscribedAll,
        4 => EmailStatus::Suppressed,
        other => {
            return Err(corrupt(
                "records",
                format!("email status {other} is not one of 0..=4"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::source::demo::demo_data;
    use crate::source::generate::{GenSpec, generate};

    fn demo() -> Tenant {
        demo_data().tenants.into_iter().next().unwrap()
    }

    #[test]
    fn a_tenant_round_trips_with_its_header() {
        let tenant = demo();
        let bytes = encode(&tenant, 42, 7);
        let (meta, back) = decode(&bytes).unwrap();
        assert_eq!(back, tenant_as_carried(&tenant));
        assert_eq!(
            meta,
            SnapshotMeta {
                tenant: tenant.id.clone(),
                revision: 42,
                stream_seq: 7,
                records: tenant.records.len() as u64,
                bytes: bytes.len(),
            }
        );
        assert_eq!(super::meta(&bytes).unwrap(), meta);
    }

    #[test]
    fn damage_anywhere_is_refused_never_read() {
        let bytes = encode(&demo(), 1, 0);
        for at in (0..bytes.len()).step_by(bytes.len() / 97) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(decode(&bad).is_err(), "a flipped byte at {at} was read");
        }
        for len in [0, 7, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..len]).is_err(), "{len} bytes were read");
        }
    }

    #[test]
    fn a_resealed_edit_passes_the_checksum_and_meets_the_decoder() {
        let mut bytes = encode(&demo(), 1, 0);
        let at = bytes.len() - 100;
        bytes[at] ^= 0xff;
        assert!(matches!(
            decode(&bytes).unwrap_err(),
            SnapshotError::Checksum { .. }
        ));
        reseal(&mut bytes);
        assert!(!matches!(
            decode(&bytes),
            Err(SnapshotError::Checksum { .. })
        ));
        reseal(&mut [0u8; 3]); // too short to hold one: left alone
    }

    #[test]
    fn the_errors_say_what_is_wrong() {
        assert_eq!(decode(b"hello").unwrap_err(), SnapshotError::NotASnapshot);
        let mut newer = encode(&demo(), 1, 0);
        newer[8..12].copy_from_slice(&(FORMAT + 1).to_le_bytes());
        let e = decode(&newer).unwrap_err();
        assert_eq!(e, SnapshotError::NewerFormat(FORMAT + 1));
        assert!(e.to_string().contains("upgrade permd"), "{e}");
        let mut flipped = encode(&demo(), 1, 0);
        let last = flipped.len() - 5;
        flipped[last] ^= 1;
        assert!(matches!(
            decode(&flipped).unwrap_err(),
            SnapshotError::Checksum { .. }
        ));
    }

    #[test]
    fn formats_1_and_2_are_still_read_and_format_2_on_counts_each_object() {
        let tenant = demo();
        let old = encode_format(&tenant, 3, 1, 1);
        assert_eq!(u32::from_le_bytes(old[8..12].try_into().unwrap()), 1);
        let (_, _, records) = open(&old).unwrap();
        assert!(records.object_sizes().is_empty());
        assert_eq!(decode(&old).unwrap().1, tenant);

        let mut expected: std::collections::BTreeMap<String, usize> = Default::default();
        for r in &tenant.records {
            *expected.entry(r.object.clone()).or_default() += 1;
        }
        let expected: Vec<(String, usize)> = expected.into_iter().collect();
        for format in [2, 3] {
            let new = encode_format(&tenant, 3, 1, format);
            assert_eq!(u32::from_le_bytes(new[8..12].try_into().unwrap()), format);
            let (_, _, records) = open(&new).unwrap();
            let mut sizes = records.object_sizes();
            sizes.sort();
            assert_eq!(sizes, expected, "format {format}");
        }
        // Format 2 carries Contacts as written.
        assert_eq!(decode(&encode_format(&tenant, 3, 1, 2)).unwrap().1, tenant);
    }

    /// Counts that do not add up to the header, or that a record does not
    /// match, are refused: the decoder holds records to them, in every
    /// format that has them.
    #[test]
    fn counts_that_disagree_with_the_records_are_refused() {
        for format in 2..=FORMAT {
            counts_are_held_to_the_records(format);
        }
    }

    fn counts_are_held_to_the_records(format: u32) {
        let tenant = demo();
        let bytes = encode_format(&tenant, 1, 0, format);
        let catalog_len = u32::from_le_bytes(bytes[36..40].try_into().unwrap()) as usize;
        let strings_at = HEADER_BYTES + catalog_len;
        let (_, after_strings) =
            postcard::take_from_bytes::<Vec<String>>(&bytes[strings_at..]).unwrap();
        let counts_at = bytes.len() - after_strings.len();
        let (counts, after_counts) =
            postcard::take_from_bytes::<Vec<(u32, u64)>>(after_strings).unwrap();
        let counts_end = bytes.len() - after_counts.len();
        let with_counts = |counts: &[(u32, u64)]| {
            let mut out = bytes[..counts_at].to_vec();
            out.extend_from_slice(&postcard::to_stdvec(counts).unwrap());
            out.extend_from_slice(&bytes[counts_end..]);
            reseal(&mut out);
            out
        };
        // One record moved from one object's count to another's: the sum
        // still matches the header, the records do not.
        let mut moved = counts.clone();
        moved[0].1 -= 1;
        moved[1].1 += 1;
        let e = decode(&with_counts(&moved)).unwrap_err().to_string();
        assert!(e.contains("records, its count says"), "{e}");
        let mut short = counts.clone();
        short[0].1 -= 1;
        let e = decode(&with_counts(&short)).unwrap_err().to_string();
        assert!(e.contains("the header says"), "{e}");
        let mut twice = counts.clone();
        twice.push((counts[0].0, 0));
        let e = decode(&with_counts(&twice)).unwrap_err().to_string();
        assert!(e.contains("counted twice"), "{e}");
        let e = decode(&with_counts(&[(u32::MAX, tenant.records.len() as u64)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("past the"), "{e}");
        // Unchanged counts spliced back give the same snapshot.
        assert_eq!(with_counts(&counts), bytes);
        // A forged header and counts (a billion records for each of two
        // objects) size no more in all than the bytes could hold.
        let mut forged = with_counts(&[(counts[0].0, 1 << 30), (counts[1].0, 1 << 30)]);
        forged[28..36].copy_from_slice(&(2u64 << 30).to_le_bytes());
        reseal(&mut forged);
        let (_, _, records) = open(&forged).unwrap();
        let sized: usize = records.object_sizes().iter().map(|(_, n)| n).sum();
        assert!(sized <= forged.len() / MIN_RECORD_BYTES, "{sized}");
        assert!(decode(&forged).is_err());
    }

    /// Format 3 keeps no address and no number, only whether each is
    /// there and valid: a Contact whose address is invalid, blank or
    /// missing has none, one with a valid address the placeholder, and
    /// the opted-out lists survive.
    #[test]
    fn format_3_carries_no_address_only_that_one_is_valid() {
        let mut tenant = demo();
        let contacts: Vec<usize> = (0..tenant.records.len())
            .filter(|&i| tenant.records[i].contact.is_some())
            .take(3)
            .collect();
        // Email, whether it is valid, mobile number, opted-out lists.
        type Written<'a> = (Option<&'a str>, bool, Option<&'a str>, &'a [&'a str]);
        let written: [Written; 3] = [
            (Some("a@b.example"), false, Some("+15550001"), &[]),
            (Some("  "), true, None, &["news", "events"]),
            (Some("x@y.example"), true, Some(" "), &[]),
        ];
        for (&at, (email, valid, mobile, lists)) in contacts.iter().zip(written) {
            let c = tenant.records[at].contact.as_mut().unwrap();
            c.email = email.map(str::to_owned);
            c.email_valid = valid;
            c.mobile_phone = mobile.map(str::to_owned);
            c.mobile_valid = true;
            c.opted_out_lists = lists.iter().map(|l| l.to_string()).collect();
        }
        let bytes = encode(&tenant, 1, 0);
        let catalog_len = u32::from_le_bytes(bytes[36..40].try_into().unwrap()) as usize;
        let after_catalog = String::from_utf8_lossy(&bytes[HEADER_BYTES + catalog_len..]);
        for written in [
            "a@b.example",
            "x@y.example",
            "+15550001",
            "@example.com",
            "+1555",
        ] {
            assert!(!after_catalog.contains(written), "{written} was written");
        }

        let (_, back) = decode(&bytes).unwrap();
        let state = |at: usize| back.records[at].contact.clone().unwrap();
        let [invalid, blank, valid] = [0, 1, 2].map(|i| state(contacts[i]));
        assert_eq!((invalid.email, invalid.email_valid), (None, false));
        assert_eq!(invalid.mobile_phone.as_deref(), Some(ADDRESS_NOT_CARRIED));
        assert_eq!((blank.email, blank.email_valid), (None, false));
        assert_eq!(blank.opted_out_lists, ["news", "events"]);
        assert_eq!(valid.email.as_deref(), Some(ADDRESS_NOT_CARRIED));
        assert!(valid.has_valid_email() && !valid.has_valid_mobile());
        for (i, r) in tenant.records.iter().enumerate() {
            if let Some(was) = &r.contact {
                let now = state(i);
                assert_eq!(was.has_valid_email(), now.has_valid_email(), "record {i}");
                assert_eq!(was.has_valid_mobile(), now.has_valid_mobile(), "record {i}");
            }
        }
        assert_eq!(back, tenant_as_carried(&tenant));
    }

    /// Streamed in pieces of any size, a snapshot decodes as it does
    /// whole; damaged, it is refused as damaged (the checksum), wherever
    /// the damage is and however it is cut.
    #[test]
    fn a_snapshot_in_pieces_decodes_as_it_does_whole() {
        let tenant = demo();
        let bytes = encode(&tenant, 9, 4);
        let streamed = |bytes: &[u8], piece: usize| {
            let pieces: Vec<Piece> = bytes.chunks(piece).map(|c| Ok(c.to_vec())).collect();
            let (meta, mut back, records) = open_stream(pieces.into_iter(), bytes.len())?;
            back.records = records.collect::<Result<_, _>>()?;
            Ok::<_, SnapshotError>((meta, back))
        };
        for piece in [1, 3, 4, 5, 64, 1000, bytes.len()] {
            let (meta, back) = streamed(&bytes, piece).unwrap();
            assert_eq!(back, tenant_as_carried(&tenant), "pieces of {piece}");
            assert_eq!((meta.revision, meta.stream_seq), (9, 4));
        }
        for at in (0..bytes.len()).step_by(bytes.len() / 61) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x08;
            for piece in [7, 4096] {
                let e = streamed(&bad, piece).unwrap_err();
                if at >= 12 {
                    // Past the magic and the format.
                    assert!(
                        matches!(e, SnapshotError::Checksum { .. }),
                        "byte {at}, pieces of {piece}: {e}"
                    );
                }
            }
        }
        for len in [0, 7, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(streamed(&bytes[..len], 5).is_err(), "{len} bytes were read");
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"more");
        assert!(streamed(&longer, 100).is_err());
        // A download that fails says so.
        let failing = bytes
            .chunks(100)
            .take(3)
            .map(|c| Ok(c.to_vec()))
            .chain(std::iter::once(Err(SnapshotError::Unreadable(
                "connection lost".to_owned(),
            ))));
        let e = open_stream(failing, bytes.len())
            .and_then(|(_, _, records)| records.collect::<Result<Vec<_>, _>>())
            .unwrap_err();
        assert_eq!(e, SnapshotError::Unreadable("connection lost".to_owned()));
    }

    /// A machine-independent figure (docs/fleet.md): bytes per record of
    /// a generated tenant's snapshot, with a margin.
    #[test]
    fn a_generated_tenant_takes_under_56_bytes_per_record() {
        let spec = GenSpec {
            contacts: 20_000,
            ..GenSpec::default()
        };
        let file = generate(&spec);
        let tenant = &file.tenants[0];
        let bytes = encode(tenant, 1, 0);
        let per_record = bytes.len() as f64 / tenant.records.len() as f64;
        assert!(per_record < 56.0, "{per_record:.1} bytes per record");
        assert_eq!(decode(&bytes).unwrap().1, tenant_as_carried(tenant));
    }
}
