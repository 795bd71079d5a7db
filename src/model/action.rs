//! Actions, their toggles, and what each action needs (the table "What each
//! action needs" of docs/model.md), plus the ordered deny reasons.

use serde::{Deserialize, Serialize};

use super::EmailStatus;
use super::level::{AccessLevel, FieldLevel};

/// Per-object action toggles of a permission group (R6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Toggle {
    Export,
    ModifyAutomation,
    SendSingleMessage,
    TeamAssociations,
    SubscriptionLists,
    ViewTimeline,
    BulkExport,
    BulkArchive,
    BulkChangeFieldValues,
    BulkModifyAutomation,
    BulkSendEmail,
    BulkSendText,
    BulkSendSurvey,
    BulkChangeTags,
    BulkManageSubscription,
}

impl Toggle {
    pub const ALL: [Toggle; 15] = [
        Self::Export,
        Self::ModifyAutomation,
        Self::SendSingleMessage,
        Self::TeamAssociations,
        Self::SubscriptionLists,
        Self::ViewTimeline,
        Self::BulkExport,
        Self::BulkArchive,
        Self::BulkChangeFieldValues,
        Self::BulkModifyAutomation,
        Self::BulkSendEmail,
        Self::BulkSendText,
        Self::BulkSendSurvey,
        Self::BulkChangeTags,
        Self::BulkManageSubscription,
    ];

    /// Bit of this toggle in a [`ToggleSet`].
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// Toggles that exist only on the built-in `contacts` object (R6).
    pub fn contacts_only(self) -> bool {
        matches!(
            self,
            Self::SendSingleMessage
                | Self::TeamAssociations
                | Self::SubscriptionLists
                | Self::ViewTimeline
                | Self::BulkSendEmail
                | Self::BulkSendText
                | Self::BulkSendSurvey
                | Self::BulkChangeTags
                | Self::BulkManageSubscription
        )
    }

    pub fn as_str(self) -> &'static str {
        self.action().as_str()
    }

    /// The action of the same name; every toggle gates exactly one action.
    pub fn action(self) -> Action {
        match self {
            Self::Export => Action::Export,
            Self::ModifyAutomation => Action::ModifyAutomation,
            Self::SendSingleMessage => Action::SendSingleMessage,
            Self::TeamAssociations => Action::TeamAssociations,
            Self::SubscriptionLists => Action::SubscriptionLists,
            Self::ViewTimeline => Action::ViewTimeline,
            Self::BulkExport => Action::BulkExport,
            Self::BulkArchive => Action::BulkArchive,
            Self::BulkChangeFieldValues => Action::BulkChangeFieldValues,
            Self::BulkModifyAutomation => Action::BulkModifyAutomation,
            Self::BulkSendEmail => Action::BulkSendEmail,
            Self::BulkSendText => Action::BulkSendText,
            Self::BulkSendSurvey => Action::BulkSendSurvey,
            Self::BulkChangeTags => Action::BulkChangeTags,
            Self::BulkManageSubscription => Action::BulkManageSubscription,
        }
    }
}

impl<'de> Deserialize<'de> for Toggle {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match Toggle::ALL.into_iter().find(|t| t.as_str() == name) {
            Some(toggle) => Ok(toggle),
            // v1's toggle: say what v2 has instead of "unknown variant".
            None if name == "upload" => Err(serde::de::Error::custom(
                "'upload' is a control in model v2: set bulk_data_upload: true (with create_record: true) instead of the action toggle",
            )),
            None => Err(serde::de::Error::custom(format!(
                "unknown action toggle '{name}'; toggles are: {}",
                Toggle::ALL.map(Toggle::as_str).join(", ")
            ))),
        }
    }
}

/// A per-object control that is not a toggle of the same name (R5b): what
/// `create`, `upload` and `unarchive` need instead of a scope level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Control {
    CreateRecord,
    BulkDataUpload,
    /// `unarchive_all`, or `unarchive_associated` on associated records.
    Unarchive,
}

/// What a principal asks to do to a record (or, for `create` and `upload`,
/// to an object).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    View,
    Edit,
    Create,
    Archive,
    Unarchive,
    Export,
    BulkExport,
    Upload,
    BulkChangeFieldValues,
    BulkArchive,
    ModifyAutomation,
    BulkModifyAutomation,
    SendSingleMessage,
    BulkSendEmail,
    BulkSendSurvey,
    BulkSendText,
    BulkChangeTags,
    TeamAssociations,
    SubscriptionLists,
    BulkManageSubscription,
    ViewTimeline,
}

/// A field the action needs, at least at `level`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldNeed {
    pub field: String,
    pub level: FieldLevel,
}

/// The Contact state gate an action passes after the permission checks
/// (R13–R15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gate {
    Email,
    Sms,
    /// Changing the email status; `bulk` forbids leaving `unsubscribed_all`.
    Subscription {
        bulk: bool,
    },
}

impl Action {
    pub const ALL: [Action; 21] = [
        Self::View,
        Self::Edit,
        Self::Create,
        Self::Archive,
        Self::Unarchive,
        Self::Export,
        Self::BulkExport,
        Self::Upload,
        Self::BulkChangeFieldValues,
        Self::BulkArchive,
        Self::ModifyAutomation,
        Self::BulkModifyAutomation,
        Self::SendSingleMessage,
        Self::BulkSendEmail,
        Self::BulkSendSurvey,
        Self::BulkSendText,
        Self::BulkChangeTags,
        Self::TeamAssociations,
        Self::SubscriptionLists,
        Self::BulkManageSubscription,
        Self::ViewTimeline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Edit => "edit",
            Self::Create => "create",
            Self::Archive => "archive",
            Self::Unarchive => "unarchive",
            Self::Export => "export",
            Self::BulkExport => "bulk_export",
            Self::Upload => "upload",
            Self::BulkChangeFieldValues => "bulk_change_field_values",
            Self::BulkArchive => "bulk_archive",
            Self::ModifyAutomation => "modify_automation",
            Self::BulkModifyAutomation => "bulk_modify_automation",
            Self::SendSingleMessage => "send_single_message",
            Self::BulkSendEmail => "bulk_send_email",
            Self::BulkSendSurvey => "bulk_send_survey",
            Self::BulkSendText => "bulk_send_text",
            Self::BulkChangeTags => "bulk_change_tags",
            Self::TeamAssociations => "team_associations",
            Self::SubscriptionLists => "subscription_lists",
            Self::BulkManageSubscription => "bulk_manage_subscription",
            Self::ViewTimeline => "view_timeline",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Why a name that is not an action is refused: retired v1 names say
    /// what replaced them.
    pub fn unknown(name: &str) -> String {
        if name == "view_archived" {
            "action 'view_archived' is retired in model v2: archived records answer only 'unarchive' (RecordAccess reports it per record)".to_owned()
        } else {
            format!("unknown action '{name}'; actions are: {}", Self::names())
        }
    }

    /// Every action name, for error messages that list the valid ones.
    pub fn names() -> String {
        Self::ALL.map(Action::as_str).join(", ")
    }

    /// Actions that act on the object rather than a record: their control
    /// is enough (R5b).
    pub fn is_record_less(self) -> bool {
        matches!(self, Self::Create | Self::Upload)
    }

    /// Actions that exist only on the built-in `contacts` object.
    pub fn contacts_only(self) -> bool {
        self.toggle().is_some_and(Toggle::contacts_only)
    }

    /// Bulk actions are checked record by record exactly like single ones
    /// (R6); the flag only sorts them in `ObjectAccess`.
    pub fn is_bulk(self) -> bool {
        self.as_str().starts_with("bulk_")
    }

    /// `unarchive` is the only action an archived record allows, and the
    /// only one a live record denies for being live (R10).
    pub fn reaches_archived(self) -> bool {
        self == Self::Unarchive
    }

    /// The control the action needs instead of a scope level (R5b, R10).
    pub fn control(self) -> Option<Control> {
        match self {
            Self::Create => Some(Control::CreateRecord),
            Self::Upload => Some(Control::BulkDataUpload),
            Self::Unarchive => Some(Control::Unarchive),
            _ => None,
        }
    }

    /// The toggle that must be on, if any.
    pub fn toggle(self) -> Option<Toggle> {
        Toggle::ALL.into_iter().find(|t| t.action() == self)
    }

    /// The record access level the action needs (R5, R11); `none` for the
    /// actions that need a [`Control`] instead. `subscription_lists` needs
    /// `edit` only when it changes a status.
    pub fn level(self, ctx: &ActionContext) -> AccessLevel {
        use AccessLevel::*;
        match self {
            Self::View
            | Self::Export
            | Self::BulkExport
            | Self::SendSingleMessage
            | Self::BulkSendEmail
            | Self::BulkSendSurvey
            | Self::BulkSendText
            | Self::ViewTimeline => View,
            Self::SubscriptionLists if ctx.target_email_status.is_none() => View,
            Self::Create | Self::Upload | Self::Unarchive => None,
            Self::Edit
            | Self::BulkChangeFieldValues
            | Self::ModifyAutomation
            | Self::BulkModifyAutomation
            | Self::BulkChangeTags
            | Self::TeamAssociations
            | Self::SubscriptionLists
            | Self::BulkManageSubscription => Edit,
            Self::Archive | Self::BulkArchive => Remove,
        }
    }

    /// The fields the action needs and at which level. An empty list means
    /// no field rule; each entry must hold (`send_single_message` needs only
    /// the field of its channel).
    pub fn field_needs(self, ctx: &ActionContext) -> Vec<FieldNeed> {
        let need = |field: &str, level| FieldNeed {
            field: field.to_owned(),
            level,
        };
        match self {
            Self::Edit | Self::BulkChangeFieldValues => ctx
                .fields
                .iter()
                .map(|f| need(f, FieldLevel::Edit))
                .collect(),
            Self::SendSingleMessage => match ctx.channel {
                Some(Channel::Email) => vec![need("email", FieldLevel::View)],
                Some(Channel::Text) => vec![need("mobile_phone", FieldLevel::View)],
                None => vec![],
            },
            Self::BulkSendEmail | Self::BulkSendSurvey => vec![need("email", FieldLevel::View)],
            Self::BulkSendText => vec![need("mobile_phone", FieldLevel::View)],
            Self::BulkChangeTags => vec![need("tags", FieldLevel::Edit)],
            Self::SubscriptionLists if ctx.target_email_status.is_none() => {
                vec![need("email_status", FieldLevel::View)]
            }
            Self::SubscriptionLists | Self::BulkManageSubscription => {
                vec![need("email_status", FieldLevel::Edit)]
            }
            _ => vec![],
        }
    }

    /// The Contact state gate the action passes last, if any.
    pub fn gate(self, ctx: &ActionContext) -> Option<Gate> {
        match self {
            Self::SendSingleMessage => match ctx.channel {
                Some(Channel::Email) => Some(Gate::Email),
                Some(Channel::Text) => Some(Gate::Sms),
                None => None,
            },
            Self::BulkSendEmail | Self::BulkSendSurvey => Some(Gate::Email),
            Self::BulkSendText => Some(Gate::Sms),
            Self::SubscriptionLists if ctx.target_email_status.is_some() => {
                Some(Gate::Subscription { bulk: false })
            }
            Self::BulkManageSubscription => Some(Gate::Subscription { bulk: true }),
            _ => None,
        }
    }

    /// The part of a context this action reads (its level, field needs
    /// and gate); the rest set to defaults. Answers are cached under it, so
    /// a field the action ignores can neither split the cache nor grow it.
    pub fn relevant_context(self, ctx: &ActionContext) -> ActionContext {
        let email_gate = matches!(self.gate(ctx), Some(Gate::Email));
        ActionContext {
            channel: if self == Self::SendSingleMessage {
                ctx.channel
            } else {
                None
            },
            transactional: email_gate && ctx.transactional,
            subscription_list: if email_gate {
                ctx.subscription_list.clone()
            } else {
                None
            },
            fields: if matches!(self, Self::Edit | Self::BulkChangeFieldValues) {
                let mut fields = ctx.fields.clone();
                fields.sort_unstable();
                fields.dedup();
                fields
            } else {
                Vec::new()
            },
            target_email_status: if matches!(
                self,
                Self::SubscriptionLists | Self::BulkManageSubscription
            ) {
                ctx.target_email_status
            } else {
                None
            },
        }
    }

    /// What the request must carry for this action, checked at the edge so a
    /// missing parameter is an INVALID_ARGUMENT, not a silent default.
    pub fn check_context(self, ctx: &ActionContext) -> Result<(), String> {
        match self {
            Self::SendSingleMessage if ctx.channel.is_none() => Err(
                "send_single_message needs context.channel (EMAIL or TEXT)".to_owned(),
            ),
            Self::BulkManageSubscription if ctx.target_email_status.is_none() => Err(
                "bulk_manage_subscription needs context.target_email_status (one of not_opted_in, opted_in, opted_out, unsubscribed_all, suppressed)"
                    .to_owned(),
            ),
            Self::BulkChangeFieldValues if ctx.fields.is_empty() => Err(
                "bulk_change_field_values needs context.fields: the fields to be changed".to_owned(),
            ),
            _ => Ok(()),
        }
    }
}

/// Message channel of `send_single_message`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Text,
}

/// What the field rules and the state gates need to know about a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ActionContext {
    pub channel: Option<Channel>,
    /// Transactional mail may reach `unsubscribed_all` Contacts (R13 choice).
    pub transactional: bool,
    pub subscription_list: Option<String>,
    /// Fields to be changed by `edit` / `bulk_change_field_values`.
    pub fields: Vec<String>,
    /// Target status of a subscription change.
    pub target_email_status: Option<EmailStatus>,
}

/// Why a record was denied, in the order of docs/model.md: a denied record
/// gets the first reason that applies. The numbers are the proto's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    UnknownRecord = 1,
    ObjectNotVisible = 2,
    Archived = 3,
    /// `unarchive` on a live record (R10).
    NotArchived = 17,
    NoRecordAccess = 4,
    ActionNotPermitted = 5,
    FieldRestricted = 6,
    NoEmail = 7,
    Suppressed = 8,
    Unsubscribed = 9,
    OptedOutOfList = 10,
    EmailNotConfigured = 11,
    /// The sender's outgoing email is blocked (R13).
    SenderBlocked = 18,
    NoMobile = 12,
    SmsOptedOut = 13,
    SmsNotConfigured = 14,
    SystemManaged = 15,
    SingleRecordOnly = 16,
}

impl Reason {
    /// Every reason, in docs/model.md order.
    pub const ALL: [Reason; 18] = [
        Self::UnknownRecord,
        Self::ObjectNotVisible,
        Self::Archived,
        Self::NotArchived,
        Self::NoRecordAccess,
        Self::ActionNotPermitted,
        Self::FieldRestricted,
        Self::NoEmail,
        Self::Suppressed,
        Self::Unsubscribed,
        Self::OptedOutOfList,
        Self::EmailNotConfigured,
        Self::SenderBlocked,
        Self::NoMobile,
        Self::SmsOptedOut,
        Self::SmsNotConfigured,
        Self::SystemManaged,
        Self::SingleRecordOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownRecord => "UNKNOWN_RECORD",
            Self::ObjectNotVisible => "OBJECT_NOT_VISIBLE",
            Self::Archived => "ARCHIVED",
            Self::NotArchived => "NOT_ARCHIVED",
            Self::NoRecordAccess => "NO_RECORD_ACCESS",
            Self::ActionNotPermitted => "ACTION_NOT_PERMITTED",
            Self::FieldRestricted => "FIELD_RESTRICTED",
            Self::NoEmail => "NO_EMAIL",
            Self::Suppressed => "SUPPRESSED",
            Self::Unsubscribed => "UNSUBSCRIBED",
            Self::OptedOutOfList => "OPTED_OUT_OF_LIST",
            Self::EmailNotConfigured => "EMAIL_NOT_CONFIGURED",
            Self::SenderBlocked => "SENDER_BLOCKED",
            Self::NoMobile => "NO_MOBILE",
            Self::SmsOptedOut => "SMS_OPTED_OUT",
            Self::SmsNotConfigured => "SMS_NOT_CONFIGURED",
            Self::SystemManaged => "SYSTEM_MANAGED",
            Self::SingleRecordOnly => "SINGLE_RECORD_ONLY",
        }
    }
}
