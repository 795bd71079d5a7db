//! Ordered access levels (R5) and field levels (R7). The derived `Ord` is the
//! rule: a higher variant includes every lower one, and the union of groups
//! (R1) is `max`.

use serde::{Deserialize, Serialize};

/// Record access level of a scope: `none < view < edit < remove` (R5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    #[default]
    None,
    View,
    /// Create and edit.
    Edit,
    /// Everything a scope can give, including archive.
    Remove,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 4] = [Self::None, Self::View, Self::Edit, Self::Remove];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::View => "view",
            Self::Edit => "edit",
            Self::Remove => "remove",
        }
    }
}

impl<'de> Deserialize<'de> for AccessLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match AccessLevel::ALL.into_iter().find(|l| l.as_str() == name) {
            Some(level) => Ok(level),
            // v1's name: say what v2 calls it rather than "unknown variant".
            None if name == "delete" => Err(serde::de::Error::custom(
                "level 'delete' is called 'remove' in model v2 (`permd migrate-data` rewrites v1 files)",
            )),
            None => Err(serde::de::Error::custom(format!(
                "unknown level '{name}'; levels are: none, view, edit, remove"
            ))),
        }
    }
}

/// Field permission: `none < view < edit` (R7). Fields a group does not
/// mention take its `default_for_new_field`, `none` unless set: deny by
/// default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldLevel {
    #[default]
    None,
    View,
    Edit,
}

impl FieldLevel {
    pub const ALL: [FieldLevel; 3] = [Self::None, Self::View, Self::Edit];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::View => "view",
            Self::Edit => "edit",
        }
    }
}

impl<'de> Deserialize<'de> for FieldLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match FieldLevel::ALL.into_iter().find(|l| l.as_str() == name) {
            Some(level) => Ok(level),
            None if name == "hidden" => Err(serde::de::Error::custom(
                "field level 'hidden' is called 'none' in model v2 (`permd migrate-data` rewrites v1 files)",
            )),
            None => Err(serde::de::Error::custom(format!(
                "unknown field level '{name}'; field levels are: none, view, edit"
            ))),
        }
    }
}
