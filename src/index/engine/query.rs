//! The read-side entry points — BatchCheck, Check, LookupRecords,
//! ObjectAccess, RecordAccess — and the answers they give.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Engine, PrincipalRef, Question, Resolved};
use crate::index::compile::{Compiled, Effective};
use crate::index::error::QueryError;
use crate::index::ord::{RecordOrd, UNKNOWN};
use crate::index::tenant::{ObjectIndex, TenantIndex};
use crate::model::{Action, ActionContext, Channel, Control, FieldLevel, Reason};

/// One field and the principal's level on it.
pub type FieldMask = Vec<(String, FieldLevel)>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchAnswer {
    /// Bit `i % 8` of byte `i / 8` is set iff position `i` is allowed.
    pub allowed: Vec<u8>,
    pub allowed_count: u32,
    /// Denied positions in request order with their first reason.
    pub denials: Vec<(u32, Reason)>,
    pub field_mask: FieldMask,
    pub revision: u64,
    /// Per position, the handle to send instead of the id next time
    /// ([`Engine::batch_check_handles`]); [`UNKNOWN`] where the id is not
    /// known.
    pub handles: RecordHandles,
}

/// Records of one object named by their ordinals in its id table, which
/// `space` names: what a client may cache in place of ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordHandles {
    pub space: u64,
    pub ords: Vec<RecordOrd>,
}

impl BatchAnswer {
    pub fn is_allowed(&self, position: usize) -> bool {
        self.allowed
            .get(position / 8)
            .is_some_and(|b| b & (1 << (position % 8)) != 0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub reason: Option<Reason>,
    pub field_mask: FieldMask,
    pub revision: u64,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.reason.is_none()
    }
}

/// Level 1 flags of one object (R16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectFlags {
    pub object: String,
    pub view: bool,
    pub edit: bool,
    pub remove: bool,
    /// What `create` needs (R5b).
    pub create_record: bool,
    /// What `upload` needs (R5b).
    pub bulk_data_upload: bool,
    /// Some unarchive control is on (R10).
    pub unarchive: bool,
    pub single_actions: Vec<Action>,
    pub bulk_actions: Vec<Action>,
    pub field_mask: FieldMask,
}

/// Per-record flags (R17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFlags {
    pub record_id: Uuid,
    pub view: bool,
    pub edit: bool,
    pub remove: bool,
    /// `unarchive` is allowed: the record is archived and a control
    /// reaches it (R10).
    pub unarchive: bool,
    /// Empty unless the record can be viewed.
    pub field_mask: FieldMask,
}

impl Engine {
    pub(super) fn field_mask(
        tenant: &TenantIndex,
        object: usize,
        levels: &[FieldLevel],
    ) -> FieldMask {
        let fields = tenant
            .objects
            .get(object)
            .map(|o| o.fields.as_slice())
            .unwrap_or_default();
        fields.iter().cloned().zip(levels.iter().copied()).collect()
    }

    /// Answers one action for many records, one answer per request position.
    pub fn batch_check(
        &self,
        q: &Question,
        ids: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<BatchAnswer, QueryError> {
        self.batch(q, ids.len(), now, |object, ords| {
            object.ids.get_many(ids, ords);
            Ok(())
        })
    }

    /// BatchCheck of records named by the handles an earlier answer gave
    /// for them ([`BatchAnswer::handles`]): no id to look up, so the answer
    /// costs only the decisions. Handles of another table — this process
    /// restarted, or reloaded the tenant, since they were handed out — are
    /// refused, never read as some other record.
    pub fn batch_check_handles(
        &self,
        q: &Question,
        handles: &RecordHandles,
        now: OffsetDateTime,
    ) -> Result<BatchAnswer, QueryError> {
        self.batch(q, handles.ords.len(), now, |object, ords| {
            if handles.space != object.ids.space() {
                return Err(QueryError::StaleHandles {
                    tenant: q.tenant.clone(),
                    object: object.name.clone(),
                });
            }
            object.ids.ords(&handles.ords, ords);
            Ok(())
        })
    }

    /// One decision per record of `len`; `ords` fills in each position's
    /// ordinal in the object, [`UNKNOWN`] for none.
    fn batch(
        &self,
        q: &Question,
        len: usize,
        now: OffsetDateTime,
        ords_of: impl FnOnce(&ObjectIndex, &mut [RecordOrd]) -> Result<(), QueryError>,
    ) -> Result<BatchAnswer, QueryError> {
        if len > self.max_batch {
            return Err(QueryError::BatchTooLarge {
                size: len,
                limit: self.max_batch,
            });
        }
        let r = self.resolve(q)?;
        if r.action.is_record_less() {
            return Err(QueryError::RecordLessAction(r.action.as_str()));
        }
        let object = r
            .tenant
            .objects
            .get(r.object)
            .ok_or(QueryError::Internal("object index out of range"))?;
        let mut ords = vec![0; len];
        ords_of(object, &mut ords)?;
        let compiled = self.compiled(&r, now);
        let mut allowed = vec![0u8; len.div_ceil(8)];
        let mut allowed_count = 0u32;
        let mut denials = Vec::new();
        for ((chunk, byte), first) in ords.chunks(8).zip(&mut allowed).zip((0u32..).step_by(8)) {
            for (bit, &ord) in (0u32..).zip(chunk) {
                let pos = first + bit;
                if ord == UNKNOWN {
                    denials.push((pos, Reason::UnknownRecord));
                } else if compiled.allows(ord) {
                    *byte |= 1 << bit;
                    allowed_count += 1;
                } else {
                    denials.push((pos, compiled.reason(object, ord)));
                }
            }
        }
        Ok(BatchAnswer {
            allowed,
            allowed_count,
            denials,
            field_mask: Self::field_mask(&r.tenant, r.object, &compiled.field_mask),
            revision: r.revision,
            handles: RecordHandles {
                space: object.ids.space(),
                ords,
            },
        })
    }

    /// Answers one action for one record, or for none (`create`, `upload`).
    pub fn check(
        &self,
        q: &Question,
        record: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<Decision, QueryError> {
        let r = self.resolve(q)?;
        self.decide(&r, record, now)
    }

    /// One decision on a question already resolved against one snapshot.
    pub(crate) fn decide(
        &self,
        r: &Resolved,
        record: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<Decision, QueryError> {
        let object = r
            .tenant
            .objects
            .get(r.object)
            .ok_or(QueryError::Internal("object index out of range"))?;
        match (r.action.is_record_less(), record) {
            (true, Some(_)) => Err(QueryError::RecordLessAction(r.action.as_str())),
            (false, None) => Err(QueryError::RecordRequired(r.action.as_str())),
            (true, None) => {
                let eff = Effective::of(&r.tenant, &r.principal, r.object);
                let reason = record_less_reason(&eff, r.action);
                // A field is never shown through a denied answer (R7).
                let field_mask = match reason {
                    None => Self::field_mask(&r.tenant, r.object, &eff.fields),
                    Some(_) => Vec::new(),
                };
                Ok(Decision {
                    reason,
                    field_mask,
                    revision: r.revision,
                })
            }
            (false, Some(id)) => {
                let compiled = self.compiled(r, now);
                let reason = match object.ord(&id) {
                    Some(ord) if compiled.allows(ord) => None,
                    Some(ord) => Some(compiled.reason(object, ord)),
                    None => Some(Reason::UnknownRecord),
                };
                let field_mask = match reason {
                    None => Self::field_mask(&r.tenant, r.object, &compiled.field_mask),
                    Some(_) => Vec::new(),
                };
                Ok(Decision {
                    reason,
                    field_mask,
                    revision: r.revision,
                })
            }
        }
    }

    /// Every record the action is allowed on, as ids in ordinal order.
    pub fn lookup(
        &self,
        q: &Question,
        now: OffsetDateTime,
    ) -> Result<(Vec<Uuid>, u64), QueryError> {
        let r = self.resolve(q)?;
        if r.action.is_record_less() {
            return Err(QueryError::RecordLessAction(r.action.as_str()));
        }
        let compiled = self.compiled(&r, now);
        let object = r
            .tenant
            .objects
            .get(r.object)
            .ok_or(QueryError::Internal("object index out of range"))?;
        let ids = compiled
            .allowed
            .iter()
            .filter_map(|ord| object.id(ord))
            .collect();
        Ok((ids, r.revision))
    }

    /// Level 1 flags of one object, or of every object the principal sees (R16).
    pub fn object_access(
        &self,
        tenant: &str,
        principal: &PrincipalRef,
        object: Option<&str>,
        min_revision: u64,
    ) -> Result<(Vec<ObjectFlags>, bool, u64), QueryError> {
        let (revision, tenant_index, resolved) =
            self.tenant_and_principal(tenant, principal, min_revision)?;
        let objects: Vec<usize> = match object {
            Some(name) => vec![Self::object_of(&tenant_index, name)?],
            None => (0..tenant_index.objects.len()).collect(),
        };
        let flags = objects
            .into_iter()
            .filter_map(|oi| {
                let eff = Effective::of(&tenant_index, &resolved, oi);
                let object = tenant_index.objects.get(oi)?;
                if !eff.visible() {
                    return None;
                }
                let possible: Vec<Action> = Action::ALL
                    .into_iter()
                    .filter(|a| a.toggle().is_some())
                    .filter(|a| !a.contacts_only() || object.contact.is_some())
                    .filter(|a| {
                        // An action is listed if some context of it could
                        // pass: send_single_message by email or by text.
                        Self::contexts_of(*a).iter().any(|ctx| {
                            eff.toggle_on(*a)
                                && eff.best_level() >= a.level(ctx)
                                && eff.fields_allow(object, *a, ctx)
                        })
                    })
                    .collect();
                let (bulk, single) = possible.into_iter().partition(|a| a.is_bulk());
                Some(ObjectFlags {
                    object: object.name.clone(),
                    view: eff.view_object,
                    edit: eff.edit_settings,
                    remove: eff.delete_object,
                    create_record: eff.control_on(Control::CreateRecord),
                    bulk_data_upload: eff.control_on(Control::BulkDataUpload),
                    unarchive: eff.control_on(Control::Unarchive),
                    single_actions: single,
                    bulk_actions: bulk,
                    field_mask: Self::field_mask(&tenant_index, oi, &eff.fields),
                })
            })
            .collect();
        let create_objects = resolved.admin
            || resolved
                .groups
                .iter()
                .filter_map(|g| tenant_index.groups.get(*g))
                .any(|g| g.create_objects);
        Ok((flags, create_objects, revision))
    }

    /// The contexts under which ObjectAccess asks whether an action is
    /// possible at all.
    pub(super) fn contexts_of(action: Action) -> Vec<ActionContext> {
        match action {
            Action::SendSingleMessage => [Channel::Email, Channel::Text]
                .into_iter()
                .map(|channel| ActionContext {
                    channel: Some(channel),
                    ..ActionContext::default()
                })
                .collect(),
            _ => vec![ActionContext::default()],
        }
    }

    /// Per-record view / edit / remove / unarchive flags and field masks
    /// (R17).
    pub fn record_access(
        &self,
        tenant: &str,
        principal: &PrincipalRef,
        object: &str,
        ids: &[Uuid],
        min_revision: u64,
        now: OffsetDateTime,
    ) -> Result<(Vec<RecordFlags>, u64), QueryError> {
        if ids.len() > self.max_batch {
            return Err(QueryError::BatchTooLarge {
                size: ids.len(),
                limit: self.max_batch,
            });
        }
        let question = |action: Action| Question {
            tenant: tenant.to_owned(),
            principal: principal.clone(),
            object: object.to_owned(),
            action: action.as_str().to_owned(),
            ctx: ActionContext::default(),
            min_revision,
        };
        let view = self.resolve(&question(Action::View))?;
        let compiled = |r: &Resolved| self.compiled(r, now);
        let as_action = |action: Action| {
            compiled(&Resolved {
                action,
                ..view.clone()
            })
        };
        let (view_c, edit_c, remove_c, unarchive_c) = (
            compiled(&view),
            as_action(Action::Edit),
            as_action(Action::Archive),
            as_action(Action::Unarchive),
        );
        let object_index = view
            .tenant
            .objects
            .get(view.object)
            .ok_or(QueryError::Internal("object index out of range"))?;
        let mask = Self::field_mask(&view.tenant, view.object, &view_c.field_mask);
        let flags = ids
            .iter()
            .map(|id| {
                let ord: Option<RecordOrd> = object_index.ord(id);
                let has = |c: &Compiled| ord.is_some_and(|o| c.allows(o));
                let view = has(&view_c);
                RecordFlags {
                    record_id: *id,
                    view,
                    edit: view && has(&edit_c),
                    remove: view && has(&remove_c),
                    unarchive: has(&unarchive_c),
                    field_mask: if view { mask.clone() } else { Vec::new() },
                }
            })
            .collect();
        Ok((flags, view.revision))
    }

    /// The allowed set of a question, for callers that stream it.
    pub fn allowed_set(
        &self,
        q: &Question,
        now: OffsetDateTime,
    ) -> Result<(Resolved, Arc<Compiled>), QueryError> {
        let r = self.resolve(q)?;
        if r.action.is_record_less() {
            return Err(QueryError::RecordLessAction(r.action.as_str()));
        }
        let compiled = self.compiled(&r, now);
        Ok((r, compiled))
    }
}

/// `create` and `upload`: the object is visible and their control is on
/// (R5b). The catalog rules make the control imply an edit scope.
fn record_less_reason(eff: &Effective, action: Action) -> Option<Reason> {
    if !eff.visible() {
        Some(Reason::ObjectNotVisible)
    } else if action.control().is_some_and(|c| !eff.control_on(c)) {
        Some(Reason::ActionNotPermitted)
    } else {
        None
    }
}
