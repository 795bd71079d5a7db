//! The built-in demo tenant that `permd serve` answers with no flags: a small
//! CRM with five groups, three roles, eight users (one admin, one service
//! account, one whose outgoing email is blocked), an integration, an
//! automation, companies and deals related to 10,000 Contacts in a
//! realistic mix of email and SMS states. Generated deterministically, so the
//! README's examples always give the same answers.

use std::collections::BTreeMap;

use time::macros::datetime;
use uuid::Uuid;

use super::rng::Rng;
use crate::model::data::{
    AssociationSource, Automation, ContactState, DataFile, EmailInbox, EmailStatus, Group,
    Integration, ObjectDef, ObjectPermissions, Record, Relationship, Role, RunAs, Tenant, User,
};
use crate::model::{AccessLevel, FieldLevel, Toggle};

pub const DEMO_TENANT: &str = "demo";
pub const DEMO_CONTACTS: u64 = 10_000;
const COMPANIES: u64 = 200;
const DEALS: u64 = 600;

/// Id of the n-th demo Contact: `c0000000-0000-4000-8000-<n in hex>`.
pub fn contact_id(n: u64) -> Uuid {
    Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0000 | u128::from(n))
}
pub fn company_id(n: u64) -> Uuid {
    Uuid::from_u128(0xa000_0000_0000_4000_8000_0000_0000_0000 | u128::from(n))
}
pub fn deal_id(n: u64) -> Uuid {
    Uuid::from_u128(0xd000_0000_0000_4000_8000_0000_0000_0000 | u128::from(n))
}

/// A group's settings on one object; `create_record` follows the catalog
/// (on wherever My Associated Records allows it), the rest is default.
fn perms(
    all: AccessLevel,
    associated: AccessLevel,
    actions: &[Toggle],
    default_for_new_field: FieldLevel,
    fields: &[(&str, FieldLevel)],
) -> ObjectPermissions {
    ObjectPermissions {
        view_object: true,
        all_records: all,
        associated_records: associated,
        create_record: associated >= AccessLevel::Edit,
        actions: actions.to_vec(),
        default_for_new_field,
        fields: fields.iter().map(|(f, l)| ((*f).to_owned(), *l)).collect(),
        ..ObjectPermissions::default()
    }
}

fn group(id: &str, objects: Vec<(&str, ObjectPermissions)>) -> Group {
    Group {
        id: id.to_owned(),
        create_objects: false,
        objects: objects
            .into_iter()
            .map(|(o, p)| (o.to_owned(), p))
            .collect(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The demo data file.
pub fn demo_data() -> DataFile {
    use AccessLevel::{Edit, None as NoAccess, Remove, View};
    use FieldLevel::{Edit as FEdit, None as Hidden, View as FView};
    use Toggle::*;

    let objects = vec![
        ObjectDef {
            name: "contacts".to_owned(),
            fields: strings(&["first_name", "last_name", "job_title"]),
            team_fields: strings(&["sales_team"]),
            relationships: vec![Relationship {
                field: "company".to_owned(),
                object: "companies".to_owned(),
            }],
            association_source: AssociationSource::Both,
        },
        ObjectDef {
            name: "companies".to_owned(),
            fields: strings(&["name", "industry", "annual_revenue"]),
            team_fields: strings(&["account_team"]),
            relationships: vec![],
            association_source: AssociationSource::Direct,
        },
        ObjectDef {
            name: "deals".to_owned(),
            fields: strings(&["name", "amount", "stage"]),
            team_fields: vec![],
            relationships: vec![
                Relationship {
                    field: "contacts".to_owned(),
                    object: "contacts".to_owned(),
                },
                Relationship {
                    field: "company".to_owned(),
                    object: "companies".to_owned(),
                },
            ],
            association_source: AssociationSource::Both,
        },
    ];
    let groups = vec![
        group(
            "sales",
            vec![
                (
                    "contacts",
                    perms(
                        View,
                        Edit,
                        &[
                            Export,
                            SendSingleMessage,
                            TeamAssociations,
                            ViewTimeline,
                            BulkSendEmail,
                            BulkSendText,
                            BulkChangeTags,
                        ],
                        FView,
                        &[
                            ("tags", FEdit),
                            ("first_name", FEdit),
                            ("last_name", FEdit),
                            ("job_title", FEdit),
                        ],
                    ),
                ),
                ("companies", perms(View, Edit, &[Export], FView, &[])),
                (
                    "deals",
                    ObjectPermissions {
                        unarchive_associated: true,
                        ..perms(
                            NoAccess,
                            Remove,
                            &[BulkChangeFieldValues, BulkArchive],
                            FEdit,
                            &[],
                        )
                    },
                ),
            ],
        ),
        group(
            "marketing",
            vec![(
                "contacts",
                perms(
                    View,
                    View,
                    &[
                        Export,
                        BulkExport,
                        SubscriptionLists,
                        BulkSendEmail,
                        BulkSendSurvey,
                        BulkManageSubscription,
                    ],
                    FView,
                    &[("email_status", FEdit), ("birthday", Hidden)],
                ),
            )],
        ),
        group(
            "support",
            vec![
                (
                    "contacts",
                    perms(
                        NoAccess,
                        View,
                        &[SendSingleMessage, ViewTimeline],
                        FView,
                        &[("email", Hidden)],
                    ),
                ),
                ("companies", perms(NoAccess, View, &[], Hidden, &[])),
            ],
        ),
        group(
            "deal-desk",
            vec![(
                "deals",
                ObjectPermissions {
                    bulk_data_upload: true,
                    unarchive_associated: true,
                    unarchive_all: true,
                    ..perms(
                        Remove,
                        Remove,
                        &[BulkExport, BulkArchive, BulkChangeFieldValues],
                        FEdit,
                        &[],
                    )
                },
            )],
        ),
        group(
            "sync-readonly",
            vec![
                ("contacts", perms(View, View, &[BulkExport], FView, &[])),
                ("companies", perms(View, View, &[BulkExport], FView, &[])),
            ],
        ),
    ];
    let roles = vec![
        Role {
            id: "sales_rep".to_owned(),
            groups: strings(&["sales"]),
        },
        Role {
            id: "marketer".to_owned(),
            groups: strings(&["marketing"]),
        },
        Role {
            id: "support_agent".to_owned(),
            groups: strings(&["support"]),
        },
    ];
    let user = |id: &str, admin: bool, roles: &[&str], groups: &[&str]| User {
        id: id.to_owned(),
        admin,
        roles: strings(roles),
        groups: strings(groups),
        ..User::default()
    };
    let users = vec![
        user("ada", true, &[], &[]),
        user("alice", false, &["sales_rep"], &[]),
        user("bob", false, &["sales_rep"], &[]),
        user("erin", false, &["sales_rep"], &["deal-desk"]),
        user("carol", false, &["marketer"], &[]),
        user("dave", false, &["support_agent"], &[]),
        // An admin blocked frank's outgoing email (R13's sender gate).
        User {
            email_inbox: EmailInbox::Blocked,
            ..user("frank", false, &["sales_rep"], &[])
        },
        // The non-human user the warehouse sync's API key belongs to.
        User {
            service_account: true,
            ..user("warehouse-bot", false, &[], &["sync-readonly"])
        },
    ];
    let owners = ["alice", "bob", "erin", "carol", "dave"];

    let mut rng = Rng(0x005E_ED0F_DE40);
    let mut records = Vec::new();
    for n in 0..COMPANIES {
        records.push(Record {
            id: company_id(n),
            object: "companies".to_owned(),
            owner: rng.pick(&owners).map(|o| (*o).to_owned()),
            teams: if rng.chance(30) {
                BTreeMap::from([(
                    "account_team".to_owned(),
                    vec![
                        rng.pick(&owners)
                            .map(|o| (*o).to_owned())
                            .unwrap_or_default(),
                    ],
                )])
                .into()
            } else {
                Default::default()
            },
            interactions: vec![],
            links: BTreeMap::new(),
            archived: rng.chance(3),
            contact: None,
        });
    }
    for n in 0..DEMO_CONTACTS {
        // Contacts have no owner (R8): the rep who owns the relationship is
        // in the sales_team field.
        let mut members: Vec<String> = Vec::new();
        if rng.chance(25) {
            members.extend(
                (0..1 + rng.next() % 2)
                    .filter_map(|_| rng.pick(&owners))
                    .map(|o| (*o).to_owned()),
            );
        }
        let mut links = BTreeMap::new();
        if rng.chance(50) {
            links.insert(
                "company".to_owned(),
                vec![company_id(rng.next() % COMPANIES)],
            );
        }
        if rng.chance(90) {
            members.extend(rng.pick(&owners).map(|o| (*o).to_owned()));
        }
        members.sort_unstable();
        members.dedup();
        let teams = if members.is_empty() {
            Default::default()
        } else {
            BTreeMap::from([("sales_team".to_owned(), members)]).into()
        };
        records.push(Record {
            id: contact_id(n),
            object: "contacts".to_owned(),
            owner: None,
            teams,
            interactions: if rng.chance(10) {
                rng.pick(&owners)
                    .map(|o| vec![(*o).to_owned()])
                    .unwrap_or_default()
            } else {
                vec![]
            },
            links,
            archived: rng.chance(4),
            contact: Some(demo_contact(&mut rng, n)),
        });
    }
    for n in 0..DEALS {
        let contacts: Vec<Uuid> = (0..1 + rng.next() % 3)
            .map(|_| contact_id(rng.next() % DEMO_CONTACTS))
            .collect();
        records.push(Record {
            id: deal_id(n),
            object: "deals".to_owned(),
            owner: rng.pick(&owners).map(|o| (*o).to_owned()),
            teams: Default::default(),
            interactions: vec![],
            links: BTreeMap::from([
                ("contacts".to_owned(), contacts),
                (
                    "company".to_owned(),
                    vec![company_id(rng.next() % COMPANIES)],
                ),
            ]),
            archived: rng.chance(5),
            contact: None,
        });
    }

    DataFile {
        tenants: vec![Tenant {
            id: DEMO_TENANT.to_owned(),
            email_configured: true,
            sms_configured: true,
            objects,
            groups,
            roles,
            users,
            integrations: vec![Integration {
                id: "warehouse-sync".to_owned(),
                user: Some("warehouse-bot".to_owned()),
                groups: None,
            }],
            automations: vec![Automation {
                id: "welcome-series".to_owned(),
                run_as: RunAs::User("carol".to_owned()),
            }],
            records,
        }],
    }
}

fn demo_contact(rng: &mut Rng, n: u64) -> ContactState {
    let has_email = rng.chance(92);
    let roll = rng.next() % 100;
    let (email_status, suppressed, suppressed_until) = match roll {
        0..=59 => (EmailStatus::OptedIn, false, None),
        60..=74 => (EmailStatus::NotOptedIn, false, None),
        75..=82 => (EmailStatus::OptedOut, false, None),
        83..=92 => (EmailStatus::UnsubscribedAll, false, None),
        93..=95 => (EmailStatus::OptedIn, true, None),
        // Soft bounces: some already over, some running for years.
        96..=97 => (
            EmailStatus::OptedIn,
            true,
            Some(datetime!(2024-01-01 00:00 UTC)),
        ),
        _ => (
            EmailStatus::OptedIn,
            true,
            Some(datetime!(2099-01-01 00:00 UTC)),
        ),
    };
    let opted_out_lists = match email_status {
        EmailStatus::OptedOut => vec![
            if n.is_multiple_of(2) {
                "newsletter"
            } else {
                "product-updates"
            }
            .to_owned(),
        ],
        _ => vec![],
    };
    let has_mobile = rng.chance(80);
    ContactState {
        email: has_email.then(|| format!("contact{n}@example.com")),
        email_valid: !rng.chance(3),
        email_status,
        suppressed,
        suppressed_until,
        opted_out_lists,
        mobile_phone: has_mobile.then(|| format!("+1555{:07}", n)),
        mobile_valid: !rng.chance(5),
        sms_opted_out: rng.chance(7),
    }
}
