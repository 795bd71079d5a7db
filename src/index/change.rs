//! Record changes applied to a live index without a rebuild: a new revision
//! that shares everything the changes do not touch. One Contact's state or
//! one record's archived flag copies only its object's state sets (the id
//! table and association sets stay shared), and the next question compiles
//! afresh because compiled answers are keyed by revision.
//!
//! This is the in-memory half of a change feed: the PostgreSQL follower
//! turns changelog rows into these.

use std::sync::Arc;

use thiserror::Error;
use uuid::Uuid;

use super::tenant::{TenantIndex, index_contact};
use crate::model::data::{CONTACTS, ContactState};

/// One change to one record.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordChange {
    /// A Contact's communication state, whole (R12–R15).
    ContactState { record: Uuid, state: ContactState },
    /// A record archived or unarchived (R10).
    Archived {
        object: String,
        record: Uuid,
        archived: bool,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("unknown tenant '{0}'")]
    UnknownTenant(String),
    #[error("unknown object '{object}' in tenant '{tenant}'")]
    UnknownObject { tenant: String, object: String },
    #[error("record {record} is not a record of '{object}' in tenant '{tenant}'")]
    UnknownRecord {
        tenant: String,
        object: String,
        record: Uuid,
    },
}

impl TenantIndex {
    /// This tenant with `changes` applied, in order; all or nothing.
    pub fn apply(&self, changes: &[RecordChange]) -> Result<TenantIndex, ApplyError> {
        let mut next = self.clone();
        for change in changes {
            next.apply_one(change)?;
        }
        Ok(next)
    }

    fn apply_one(&mut self, change: &RecordChange) -> Result<(), ApplyError> {
        let (object_name, record) = match change {
            RecordChange::ContactState { record, .. } => (CONTACTS, record),
            RecordChange::Archived { object, record, .. } => (object.as_str(), record),
        };
        let unknown_object = || ApplyError::UnknownObject {
            tenant: self.id.clone(),
            object: object_name.to_owned(),
        };
        let oi = self.object_index(object_name).ok_or_else(unknown_object)?;
        let tenant = self.id.clone();
        let object = self.objects.get_mut(oi).ok_or_else(unknown_object)?;
        let ord = object
            .ord(record)
            .ok_or_else(|| ApplyError::UnknownRecord {
                tenant,
                object: object_name.to_owned(),
                record: *record,
            })?;
        // Copies the object the first time a batch touches it; later
        // changes in the batch mutate that copy.
        let object = Arc::make_mut(object);
        match change {
            RecordChange::ContactState { state, .. } => {
                if let Some(contact) = object.contact.as_mut() {
                    contact.forget(ord);
                    index_contact(contact, ord, Some(state));
                    contact.refresh_dense(ord);
                }
            }
            RecordChange::Archived { archived, .. } => {
                if *archived {
                    object.live.remove(ord);
                    object.archived.insert(ord);
                } else {
                    object.archived.remove(ord);
                    object.live.insert(ord);
                }
                object.live_dense.set(ord, !archived);
                object.archived_dense.set(ord, *archived);
            }
        }
        Ok(())
    }
}
