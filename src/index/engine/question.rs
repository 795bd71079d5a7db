//! A question as the request states it, and resolving it: every name
//! (tenant, principal, object, action, context fields) looked up once
//! against one snapshot, so the answer never mixes two revisions.

use std::sync::Arc;

use super::{Engine, Snapshot};
use crate::index::error::QueryError;
use crate::index::tenant::{Principal, PrincipalKind, TenantIndex};
use crate::model::{Action, ActionContext};

/// Who asks, as the request names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PrincipalRef {
    pub kind: PrincipalKind,
    pub id: String,
}

impl PrincipalRef {
    /// Parses the command-line and assertion-file spelling: `ID` or
    /// `user:ID` for a user, `integration:ID`, `automation:ID`.
    pub fn parse(spec: &str) -> PrincipalRef {
        let (kind, id) = match spec.split_once(':') {
            Some(("integration", id)) => (PrincipalKind::Integration, id),
            Some(("automation", id)) => (PrincipalKind::Automation, id),
            Some(("user", id)) => (PrincipalKind::User, id),
            _ => (PrincipalKind::User, spec),
        };
        PrincipalRef {
            kind,
            id: id.to_owned(),
        }
    }
}

/// One question as the request states it, before resolution.
#[derive(Clone, Debug)]
pub struct Question {
    pub tenant: String,
    pub principal: PrincipalRef,
    pub object: String,
    pub action: String,
    pub ctx: ActionContext,
    pub min_revision: u64,
}

/// A question with every name resolved against one snapshot.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub revision: u64,
    pub tenant: Arc<TenantIndex>,
    pub principal_ref: PrincipalRef,
    pub principal: Principal,
    pub object: usize,
    pub action: Action,
    pub ctx: ActionContext,
}

impl Engine {
    pub(super) fn tenant_and_principal(
        &self,
        tenant: &str,
        principal: &PrincipalRef,
        min_revision: u64,
    ) -> Result<(u64, Arc<TenantIndex>, Principal), QueryError> {
        let snapshot: Arc<Snapshot> = self.snapshot();
        // A held tenant answers at its own, older revision (and says so).
        let held = self.held.load();
        let revision = match held.get(tenant) {
            Some(h) if h.revision < snapshot.revision => {
                if min_revision > h.revision {
                    return Err(QueryError::TenantHeld {
                        tenant: tenant.to_owned(),
                        held: h.revision,
                        wanted: min_revision,
                        reason: h.reason.clone(),
                    });
                }
                h.revision
            }
            _ => snapshot.revision,
        };
        if min_revision > revision {
            return Err(QueryError::RevisionNotReached {
                current: revision,
                wanted: min_revision,
            });
        }
        let tenant_index = snapshot
            .tenants
            .get(tenant)
            .cloned()
            .ok_or_else(|| QueryError::UnknownTenant(tenant.to_owned()))?;
        let resolved = tenant_index
            .principal(principal.kind, &principal.id)
            .cloned()
            .ok_or_else(|| QueryError::UnknownPrincipal {
                kind: principal.kind.as_str(),
                id: principal.id.clone(),
                tenant: tenant.to_owned(),
            })?;
        Ok((revision, tenant_index, resolved))
    }

    pub(super) fn object_of(tenant: &TenantIndex, object: &str) -> Result<usize, QueryError> {
        tenant
            .object_index(object)
            .ok_or_else(|| QueryError::UnknownObject {
                object: object.to_owned(),
                tenant: tenant.id.clone(),
                valid: tenant.object_names(),
            })
    }

    /// Resolves every name in the question and checks the context it carries.
    pub fn resolve(&self, q: &Question) -> Result<Resolved, QueryError> {
        let (revision, tenant, principal) =
            self.tenant_and_principal(&q.tenant, &q.principal, q.min_revision)?;
        let object = Self::object_of(&tenant, &q.object)?;
        let action = Action::parse(&q.action).ok_or_else(|| QueryError::UnknownAction {
            message: Action::unknown(&q.action),
        })?;
        let object_index = tenant
            .objects
            .get(object)
            .ok_or_else(|| QueryError::UnknownObject {
                object: q.object.clone(),
                tenant: tenant.id.clone(),
                valid: tenant.object_names(),
            })?;
        if action.contacts_only() && object_index.contact.is_none() {
            return Err(QueryError::ActionNotOnObject {
                action: action.as_str(),
                object: q.object.clone(),
            });
        }
        action
            .check_context(&q.ctx)
            .map_err(QueryError::InvalidContext)?;
        for need in action.field_needs(&q.ctx) {
            if object_index.field_index(&need.field).is_none() {
                return Err(QueryError::UnknownField {
                    field: need.field,
                    object: q.object.clone(),
                    valid: object_index.fields.join(", "),
                });
            }
        }
        Ok(Resolved {
            revision,
            tenant,
            principal_ref: q.principal.clone(),
            principal,
            object,
            action,
            ctx: q.ctx.clone(),
        })
    }
}
