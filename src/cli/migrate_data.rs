//! `permd migrate-data`: rewrites a data file written for model v1 into v2
//! (src/model/migrate.rs holds the mapping), says what it changed and what
//! needs a person, and checks that the result loads.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::model::migrate::migrate_v1;
use crate::source::file::{
    DEFAULT_MAX_FILE_BYTES, is_json, parse_document, parse_str, read_bounded,
};

#[derive(clap::Args, Debug)]
pub struct MigrateDataArgs {
    /// The v1 data file (YAML or JSON).
    pub file: PathBuf,
    /// Where to write the v2 file: `.json` writes JSON, anything else YAML
    /// (comments are not kept). Standard output, in the input's format, if
    /// absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Exit status: 0 when everything was mapped and the result loads; 1 when
/// something needs a person (the output is still written, with those parts
/// left as they were, so it can be edited and checked with `permd validate`).
pub fn run(args: &MigrateDataArgs) -> anyhow::Result<i32> {
    let text = read_bounded(&args.file, DEFAULT_MAX_FILE_BYTES)?;
    let json_in = is_json(&args.file, &text);
    let doc = parse_document(&text, json_in).map_err(|(path, message)| {
        anyhow::anyhow!("{}: at {path}: {message}", args.file.display())
    })?;

    let migration = migrate_v1(doc);
    let json_out = match &args.out {
        Some(out) => out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json")),
        None => json_in,
    };
    let rendered = if json_out {
        serde_json::to_string_pretty(&migration.doc)? + "\n"
    } else {
        serde_yaml::to_string(&migration.doc)?
    };
    match &args.out {
        Some(out) => {
            std::fs::write(out, &rendered).with_context(|| format!("writing {}", out.display()))?
        }
        None => std::io::stdout().write_all(rendered.as_bytes())?,
    }

    let mut err = std::io::stderr().lock();
    for note in &migration.notes {
        writeln!(err, "note: {note}")?;
    }
    for item in &migration.unmapped {
        writeln!(err, "NOT MAPPED: {item}")?;
    }
    let named = args.out.as_deref().unwrap_or(Path::new("<stdout>"));
    // The result is checked as `permd validate` would: the mapping must
    // never produce a file that loads differently from what it says.
    let loads = parse_str(&rendered, json_out, named);
    if migration.unmapped.is_empty()
        && let Err(e) = &loads
    {
        // A mapping that produces a file v2 refuses is a bug in permd.
        anyhow::bail!("the migrated file does not load (please report this): {e}");
    }
    if migration.unmapped.is_empty() {
        writeln!(
            err,
            "{}: migrated to model v2 ({} notes); the result loads",
            args.file.display(),
            migration.notes.len()
        )?;
        return Ok(0);
    }
    writeln!(
        err,
        "{}: {} item(s) need a person (left as they were, so the result is refused until they are fixed)",
        args.file.display(),
        migration.unmapped.len()
    )?;
    if let Err(e) = loads {
        writeln!(err, "{e}")?;
    }
    Ok(1)
}
