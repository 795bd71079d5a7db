//! Ordered access levels (R5) and field levels (R7). The derived `Ord` is the
//! rule: a higher variant includes every lower one, and the union of groups
//! (R1) is `max`.

use serde::{Deserialize, Serialize};

/// Record access level of a scope: `none < view < edit < delete` (R5).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    #[default]
    None,
    View,
    /// Create and edit.
    Edit,
    /// Everything, including archive and unarchive.
    Delete,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 4] = [Self::None, Self::View, Self::Edit, Self::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::View => "view",
            Self::Edit => "edit",
            Self::Delete => "delete",
        }
    }
}

/// Field permission: `hidden < view < edit` (R7). Fields a group does not
/// mention are hidden: deny by default.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FieldLevel {
    #[default]
    Hidden,
    View,
    Edit,
}

impl FieldLevel {
    pub const ALL: [FieldLevel; 3] = [Self::Hidden, Self::View, Self::Edit];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hidden => "hidden",
            Self::View => "view",
            Self::Edit => "edit",
        }
    }
}
