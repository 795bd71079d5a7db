//! Reads a snapshot file, YAML or JSON by extension (or content), and refuses
//! it whole — naming the file, the path inside it and the problem — unless
//! every check of [`crate::model::validate`] passes.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::model::DataFile;
use crate::model::validate::{Problem, validate};

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read data file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
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

/// Reads, parses and validates a data file; returns the data and the
/// warnings to log.
pub fn load_file(file: &Path) -> Result<(DataFile, Vec<Problem>), LoadError> {
    let text = std::fs::read_to_string(file).map_err(|source| LoadError::Read {
        file: file.to_owned(),
        source,
    })?;
    let json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{');
    parse_str(&text, json, file)
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
    let data: DataFile = if json {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de)
            .map_err(|e| parse_error(e.path().to_string(), e.inner().to_string()))?
    } else {
        from_yaml(text).map_err(|(path, message)| parse_error(path, message))?
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

/// Deserializes YAML; on error, the path inside the document (e.g.
/// `tenants[0].groups[2]`) and the problem, without serde_yaml's own copy
/// of the path at the front of the message.
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
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
