//! Reads a snapshot file, YAML or JSON by extension (or content), and refuses
//! it whole — naming the file, the path inside it and the problem — unless
//! every check of [`crate::model::validate`] passes.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::model::DataFile;
use crate::model::validate::{Problem, validate};

/// Default largest data file read: 4 GiB, several times the largest
/// tenant benchmarked (1,000,000 Contacts).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read data file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("data file {file} is {kind}, not a regular file: name a YAML or JSON file")]
    NotAFile { file: PathBuf, kind: &'static str },
    #[error("data file {file} is larger than the limit of {limit} bytes (--max-data-file-bytes)")]
    TooLarge { file: PathBuf, limit: u64 },
    #[error("data file {file}: at {path}: {message}")]
    Parse {
        file: PathBuf,
        path: String,
        message: String,
    },
    #[error("data file {file} is invalid:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

/// Reads, parses and validates a data file of at most
/// [`DEFAULT_MAX_FILE_BYTES`]; returns the data and the warnings to log.
pub fn load_file(file: &Path) -> Result<(DataFile, Vec<Problem>), LoadError> {
    load_file_bounded(file, DEFAULT_MAX_FILE_BYTES)
}

/// Reads, parses and validates a data file of at most `limit` bytes. Only
/// a regular file is read (a symlink is followed to one): a FIFO would
/// block the start forever and a device could be read without end.
pub fn load_file_bounded(file: &Path, limit: u64) -> Result<(DataFile, Vec<Problem>), LoadError> {
    let text = read_bounded(file, limit)?;
    parse_str(&text, is_json(file, &text), file)
}

/// JSON by a `.json` extension or a leading `{`; YAML otherwise.
pub(crate) fn is_json(file: &Path, text: &str) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{')
}

/// The text as a JSON tree, whichever of the two formats it is in: for
/// reading a document whose shape is not (yet) the data file's.
pub(crate) fn parse_document(
    text: &str,
    json: bool,
) -> Result<serde_json::Value, (String, String)> {
    if json {
        crate::model::data::from_json_str(text)
    } else {
        from_yaml::<serde_yaml::Value>(text).and_then(|yaml| {
            serde_json::to_value(yaml).map_err(|e| (".".to_owned(), e.to_string()))
        })
    }
}

/// Loads a data file straight into a snapshot at `revision`, with the
/// warnings to log. A JSON file is read record by record
/// ([`super::stream`]): its peak memory is the index's, not the file's;
/// a YAML file, a JSON file in an unusual layout or one with a problem is
/// read whole, so that every problem is listed.
pub fn load_snapshot_file(
    file: &Path,
    limit: u64,
    revision: u64,
) -> Result<(crate::index::Snapshot, Vec<Problem>), LoadError> {
    let handle = open_bounded(file, limit)?;
    if looks_json(file, &handle) {
        match super::stream::load_json(handle, limit, revision) {
            Ok(loaded) => return Ok(loaded),
            Err(why) => {
                tracing::debug!(file = %file.display(), reason = %why.0, "reading the data file whole")
            }
        }
    }
    let (data, warnings) = load_file_bounded(file, limit)?;
    Ok((crate::index::Snapshot::build(&data, revision), warnings))
}

/// [`is_json`] of the file's first bytes, read through the handle.
fn looks_json(file: &Path, handle: &std::fs::File) -> bool {
    use std::io::{Read, Seek};
    let mut head = [0u8; 4096];
    let mut reader = handle;
    let read = reader.read(&mut head).unwrap_or(0);
    let _ = reader.rewind();
    is_json(
        file,
        &String::from_utf8_lossy(head.get(..read).unwrap_or_default()),
    )
}

pub(crate) fn read_bounded(file: &Path, limit: u64) -> Result<String, LoadError> {
    use std::io::Read;
    let read_error = |source| LoadError::Read {
        file: file.to_owned(),
        source,
    };
    let handle = open_bounded(file, limit)?;
    let too_large = || LoadError::TooLarge {
        file: file.to_owned(),
        limit,
    };
    let len = handle.metadata().map_or(0, |m| m.len());
    let mut text = String::with_capacity(usize::try_from(len).unwrap_or(0));
    // The file may grow after the check: read one byte past the limit at most.
    handle
        .take(limit.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(text)
}

/// Opens a regular file of at most `limit` bytes.
fn open_bounded(file: &Path, limit: u64) -> Result<std::fs::File, LoadError> {
    let read_error = |source| LoadError::Read {
        file: file.to_owned(),
        source,
    };
    // Opened without blocking (a FIFO would wait for a writer), then
    // checked through the open handle: what is read is what was checked.
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let handle = options.open(file).map_err(read_error)?;
    let meta = handle.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(LoadError::NotAFile {
            file: file.to_owned(),
            kind: file_kind(&meta.file_type()),
        });
    }
    let too_large = || LoadError::TooLarge {
        file: file.to_owned(),
        limit,
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    Ok(handle)
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Parses and validates text already in memory; `file` only names it in errors.
pub fn parse_str(
    text: &str,
    json: bool,
    file: &Path,
) -> Result<(DataFile, Vec<Problem>), LoadError> {
    let parse_error = |path: String, message: String| LoadError::Parse {
        file: file.to_owned(),
        path,
        message,
    };
    let parsed = if json {
        crate::model::data::from_json_str(text)
    } else {
        from_yaml(text)
    };
    let data: DataFile = match parsed {
        Ok(data) => data,
        Err((path, message)) => {
            let first = Problem {
                path: path.clone(),
                message: message.clone(),
            };
            return Err(match every_problem(text, json, first) {
                Some(problems) => LoadError::Invalid {
                    file: file.to_owned(),
                    problems,
                },
                _ => parse_error(path, message),
            });
        }
    };
    let report = validate(&data);
    if !report.errors.is_empty() {
        return Err(LoadError::Invalid {
            file: file.to_owned(),
            problems: report.errors,
        });
    }
    Ok((data, report.warnings))
}

/// Most problems one refused file lists.
const MAX_PROBLEMS: usize = 100;

/// Every problem of a document that does not decode as a data file, not
/// only the first: one typo per run is no way to fix a file. The decoder
/// is run again with each part it refused taken out, until the rest
/// decodes; then the rest is validated too, leaving out what the removals
/// themselves caused. `None` when the text is not a document at all (the
/// caller's single error says where it breaks).
fn every_problem(text: &str, json: bool, first: Problem) -> Option<Vec<Problem>> {
    use serde_json::Value;

    let mut doc: Value = parse_document(text, json).ok()?;
    // The first problem comes from the text itself (a duplicate key is
    // lost once the text is a tree), so it is kept as found.
    let mut problems = vec![first];
    let mut taken_out: Vec<String> = Vec::new();
    let mut whole_entity_out = false;
    while problems.len() < MAX_PROBLEMS {
        let error = match serde_path_to_error::deserialize::<_, DataFile>(doc.clone()) {
            Ok(data) => {
                if !whole_entity_out {
                    let under = |path: &str| {
                        taken_out
                            .iter()
                            .any(|t| path == t || path.starts_with(&format!("{t}.")))
                    };
                    let report = validate(&data);
                    problems.extend(report.errors.into_iter().filter(|p| !under(&p.path)));
                }
                break;
            }
            Err(error) => error,
        };
        let path = error.path().to_string();
        let message = error.inner().to_string();
        // A required key whose bad value was taken out is then missing:
        // that is the same problem again, not a new one.
        let echo = message.starts_with("missing field")
            && taken_out.iter().any(|t| t.starts_with(&format!("{path}.")));
        match problems.iter_mut().find(|p| p.path == path) {
            _ if echo => {}
            // The tree's message is the plainer one (no line numbers, no
            // repeated path): it replaces the text decoder's.
            Some(known) => known.message = message,
            None => problems.push(Problem {
                path: path.clone(),
                message,
            }),
        }
        let segments: Vec<_> = error.path().iter().cloned().collect();
        match take_out(&mut doc, &segments) {
            // A key or list element refused on its own.
            Some(true) => taken_out.push(path),
            // A whole entity (a missing required key): what names it
            // would be reported as dangling, so validation is skipped.
            Some(false) => whole_entity_out = true,
            None => break,
        }
    }
    Some(problems)
}

/// Removes the value at `path` (or, when the path ends at a map whose
/// decoding failed as a whole, that map from its list). `Some(true)` when
/// a key or element was removed, `Some(false)` when a whole entity was,
/// `None` when nothing could be.
fn take_out(doc: &mut serde_json::Value, path: &[serde_path_to_error::Segment]) -> Option<bool> {
    use serde_json::Value;
    use serde_path_to_error::Segment;

    let (last, parents) = path.split_last()?;
    let mut at = &mut *doc;
    for segment in parents {
        at = match (segment, at) {
            (Segment::Seq { index }, Value::Array(items)) => items.get_mut(*index)?,
            (Segment::Map { key }, Value::Object(map)) => map.get_mut(key)?,
            _ => return None,
        };
    }
    let removed = match (last, &mut *at) {
        (Segment::Seq { index }, Value::Array(items)) if *index < items.len() => {
            Some(items.remove(*index))
        }
        (Segment::Map { key }, Value::Object(map)) => map.remove(key),
        _ => None,
    };
    match removed {
        // A map refused whole (a required key missing): the entity goes.
        Some(Value::Object(_)) if is_entity(parents) => Some(false),
        Some(_) => Some(true),
        None => None,
    }
}

/// Whether a path ends inside a tenant's list of entities
/// (`tenants[0].users`): what is removed there is a whole entity.
fn is_entity(parents: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    matches!(
        parents,
        [Segment::Map { key: t }, Segment::Seq { .. }, Segment::Map { .. }] if t == "tenants"
    ) || matches!(parents, [Segment::Map { key }] if key == "tenants")
}

/// Deserializes YAML; on error, the path inside the document (e.g.
/// `tenants[0].groups[2]`) and the problem, without serde_yaml's own copy
/// of the path at the front of the message.
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    check_expansion(text)?;
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let message = message
            .strip_prefix(&format!("{path}: "))
            .map_or(message.clone(), str::to_owned);
        (path, message)
    })
}

/// Refuses YAML whose aliases expand it far beyond its own size (a
/// "billion laughs": one anchor of 20,000 names referenced 20,000 times is
/// 689 KB of text and 400,000,000 strings). Without aliases every node
/// takes at least one byte of text, so a document may have at most as many
/// nodes as bytes; the count stops as soon as it passes that. Text without
/// an anchor (`&`) has no aliases and is not counted.
fn check_expansion(text: &str) -> Result<(), (String, String)> {
    if !text.contains('&') {
        return Ok(());
    }
    let limit = text.len() + 64;
    let counter = NodeCount {
        seen: &std::cell::Cell::new(0),
        limit,
    };
    serde::de::DeserializeSeed::deserialize(counter, serde_yaml::Deserializer::from_str(text))
        .map_err(|e| (".".to_owned(), e.to_string()))
}

/// Counts the nodes of a document as its aliases expand.
#[derive(Clone, Copy)]
struct NodeCount<'a> {
    seen: &'a std::cell::Cell<usize>,
    limit: usize,
}

impl NodeCount<'_> {
    fn one<E: serde::de::Error>(&self) -> Result<(), E> {
        self.seen.set(self.seen.get() + 1);
        if self.seen.get() > self.limit {
            return Err(E::custom(format!(
                "the document's aliases expand it to more than {} nodes, more than its {} bytes could hold without them; write the repeated values out, or use fewer aliases",
                self.limit,
                self.limit - 64
            )));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for NodeCount<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NodeCount<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.one()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.one()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.one()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.one()
    }
    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<(), E> {
        self.one()
    }
    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<(), E> {
        self.one()
    }
    fn visit_char<E: serde::de::Error>(self, _: char) -> Result<(), E> {
        self.one()
    }
    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.one()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.one()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.one()
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.one()
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.one()?;
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.one()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.one()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use serde::de::VariantAccess;
        self.one()?;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn aliases_that_expand_far_beyond_the_text_are_refused() {
        let names: Vec<String> = (0..2_000).map(|i| format!("g{i}")).collect();
        let mut text = format!("groups: &all [{}]\nusers:\n", names.join(", "));
        for i in 0..2_000 {
            text.push_str(&format!("  - {{id: u{i}, groups: *all}}\n"));
        }
        let refused = from_yaml::<serde_yaml::Value>(&text).err();
        assert!(
            refused
                .as_ref()
                .is_some_and(|(_, m)| m.contains("aliases expand")),
            "{refused:?}"
        );
        // A few aliases, as people write them, are fine, whatever else the
        // document holds (a 20-digit number reads as a u128).
        let small = "base: &b {view_object: true}\na: *b\nb: *b\n";
        assert!(from_yaml::<serde_yaml::Value>(small).is_ok());
        let wide = format!("{small}id: 12345678901234567890123\n");
        assert_eq!(check_expansion(&wide), Ok(()));
    }

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = std::env::temp_dir().join(format!("permd-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_file = load_file(&dir).err();
        assert!(matches!(
            not_file,
            Some(LoadError::NotAFile {
                kind: "a directory",
                ..
            })
        ));
        #[cfg(unix)]
        {
            let zero = load_file(Path::new("/dev/zero")).err();
            assert!(
                matches!(
                    zero,
                    Some(LoadError::NotAFile {
                        kind: "a device",
                        ..
                    })
                ),
                "{zero:?}"
            );
            let link = dir.join("zero.yaml");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
            let through_link = load_file(&link).err();
            assert!(matches!(through_link, Some(LoadError::NotAFile { .. })));
        }
        let big = dir.join("big.yaml");
        std::fs::write(&big, "tenants: []\n# padding padding padding\n").unwrap();
        let too_large = load_file_bounded(&big, 16).err();
        assert!(too_large.is_some_and(|e| e.to_string().contains("--max-data-file-bytes")));
        assert!(load_file_bounded(&big, 1_000).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
