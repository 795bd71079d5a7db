//! `permd lookup` and `permd access`: what a principal may see, as
//! LookupRecords streams it, and what it may do to an object or to
//! records, as ObjectAccess and RecordAccess answer.

use anyhow::Context;
use tokio_stream::StreamExt;

use super::client::{AskArgs, Target, connect, context, principal, status_error};
use crate::pb;

#[derive(clap::Args, Debug)]
pub struct LookupArgs {
    #[command(flatten)]
    pub ask: AskArgs,
    /// Print only how many records there are, and how long the stream took.
    #[arg(long)]
    pub count: bool,
    /// Stop after this many ids.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Ids per streamed page.
    #[arg(long, default_value_t = 10_000)]
    pub page_size: u32,
    /// Have the ids streamed as packed 16-byte UUIDs (printed as usual):
    /// a third of the bytes of strings, and no string to build per id.
    #[arg(long)]
    pub packed: bool,
}

#[derive(clap::Args, Debug)]
pub struct AccessArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    /// `ID` for a user, or `integration:ID`, `automation:ID`.
    #[arg(long)]
    pub principal: String,
    /// One object (default: every object, with record ids: contacts).
    #[arg(long)]
    pub object: Option<String>,
    /// Record ids: what the principal may do to each (RecordAccess);
    /// without them, to the object(s) (ObjectAccess).
    pub records: Vec<String>,
}

/// Every id the principal may act on, one per line; the count and the
/// revision last (on stderr, so `| wc -l` counts ids). With `--count`,
/// only the count, and how long the stream took.
pub async fn lookup(args: LookupArgs) -> anyhow::Result<()> {
    let a = &args.ask;
    let mut client = connect(&a.target).await?;
    let started = std::time::Instant::now();
    let mut pages = client
        .lookup_records(pb::LookupRecordsRequest {
            tenant: a.tenant.clone(),
            principal: Some(principal(&a.principal)),
            object: a.object.clone(),
            action: a.action.clone(),
            context: Some(context(a)?),
            page_size: args.page_size,
            packed: args.packed,
            min_revision: 0,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let (mut seen, mut revision) = (0u64, 0);
    let limit = args.limit.unwrap_or(u64::MAX);
    while let Some(page) = pages.next().await {
        let page = page.map_err(status_error)?;
        revision = page.revision;
        let in_page = match (&page.record_ids, &page.packed_record_ids) {
            (Some(s), _) => s.ids.len(),
            (None, Some(p)) => p.uuids.len() / 16,
            (None, None) => 0,
        };
        let take = usize::try_from(limit - seen)
            .unwrap_or(usize::MAX)
            .min(in_page);
        seen += take as u64;
        if !args.count {
            if let Some(s) = &page.record_ids {
                for id in s.ids.iter().take(take) {
                    say!("{id}");
                }
            } else if let Some(p) = &page.packed_record_ids {
                for id in p.uuids.chunks_exact(16).take(take) {
                    say!("{}", uuid::Uuid::from_slice(id).unwrap_or_default());
                }
            }
        }
        if seen == limit {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let summary = format!(
        "{} {} {}: {seen} records (revision {revision}){}",
        a.principal,
        a.action,
        a.object,
        if seen == limit {
            ", --limit reached"
        } else {
            ""
        }
    );
    if args.count {
        // Nothing printed per id: the time is the stream's own.
        say!(
            "{summary} in {:.1} ms, {:.1} million ids/s",
            elapsed * 1e3,
            seen as f64 / elapsed.max(1e-9) / 1e6
        );
    } else {
        eprintln!("{summary}");
    }
    Ok(())
}

pub async fn access(args: AccessArgs) -> anyhow::Result<()> {
    let mut client = connect(&args.target).await?;
    if args.records.is_empty() {
        let r = client
            .object_access(pb::ObjectAccessRequest {
                tenant: args.tenant.clone(),
                principal: Some(principal(&args.principal)),
                object: args.object.clone().unwrap_or_default(),
                min_revision: 0,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        say!(
            "{}: {} may {}create objects (revision {})",
            args.tenant,
            args.principal,
            if r.create_objects { "" } else { "not " },
            r.revision
        );
        for o in &r.objects {
            let flags = flags(&[
                ("view", o.view),
                ("edit", o.edit),
                ("delete", o.remove),
                ("create_record", o.create_record),
                ("bulk_data_upload", o.bulk_data_upload),
                ("unarchive", o.unarchive),
            ]);
            say!("{}: {flags}", o.object);
            say!("  single actions: {}", list(&o.single_actions));
            say!("  bulk actions:   {}", list(&o.bulk_actions));
            say!("  field mask:     {}", mask(o.field_mask.as_ref()));
        }
        return Ok(());
    }
    let object = args.object.clone().unwrap_or_else(|| "contacts".to_owned());
    let r = client
        .record_access(pb::RecordAccessRequest {
            tenant: args.tenant.clone(),
            principal: Some(principal(&args.principal)),
            object: object.clone(),
            record_ids: args.records.clone(),
            min_revision: 0,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    say!(
        "{}: {} on {} {object} (revision {})",
        args.tenant,
        args.principal,
        r.records.len(),
        r.revision
    );
    for f in &r.records {
        let flags = flags(&[
            ("view", f.view),
            ("edit", f.edit),
            ("delete", f.remove),
            ("unarchive", f.unarchive),
        ]);
        say!("  {}  {flags}", f.record_id);
        if f.view {
            say!("    field mask: {}", mask(f.field_mask.as_ref()));
        }
    }
    Ok(())
}

/// The flags that are set, or `none`.
fn flags(named: &[(&str, bool)]) -> String {
    let set: Vec<&str> = named
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
    if set.is_empty() {
        "none".to_owned()
    } else {
        set.join(" ")
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(" ")
    }
}

/// `field=level …`, sorted by field, or `none`.
fn mask(mask: Option<&pb::FieldMask>) -> String {
    match mask.map(mask_text) {
        Some(text) if !text.is_empty() => text,
        _ => "none".to_owned(),
    }
}

/// `field=level …`, sorted by field, as every client command prints a
/// field mask; empty for an empty mask.
pub(crate) fn mask_text(mask: &pb::FieldMask) -> String {
    let fields: std::collections::BTreeMap<_, _> = mask.fields.iter().collect();
    fields
        .iter()
        .map(|(f, l)| {
            format!(
                "{f}={}",
                pb::FieldLevel::try_from(**l)
                    .map_or("?", |l| l.as_str_name())
                    .to_lowercase()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a file, or stdin for `-`.
pub(crate) fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}
