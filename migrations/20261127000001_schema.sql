-- permd's schema: every entity of the permission model, a changelog the
-- sidecars follow, and the revision counter that orders it.
--
-- Any writer may write these tables (the platform's own code, psql, or
-- permd's Admin.Write): row triggers log every change. Revisions are taken
-- at commit, one per transaction, under a row lock on permd.revision, so
-- revision order is commit order by construction: a follower that has read
-- revision N has read everything before it, even when transactions take
-- their changelog sequence numbers in one order and commit in another.
CREATE SCHEMA IF NOT EXISTS permd;

CREATE TABLE permd.tenants (
    id text PRIMARY KEY CHECK (btrim(id) <> ''),
    email_configured boolean NOT NULL DEFAULT false,
    sms_configured boolean NOT NULL DEFAULT false
);

-- Custom objects, and optionally `contacts` to add fields or relationships
-- (it exists even without a row), as in the snapshot file.
CREATE TABLE permd.objects (
    tenant text NOT NULL REFERENCES permd.tenants (id) ON DELETE CASCADE,
    name text NOT NULL,
    fields text[] NOT NULL DEFAULT '{}',
    team_fields text[] NOT NULL DEFAULT '{}',
    -- [{"field": "...", "object": "..."}]
    relationships jsonb NOT NULL DEFAULT '[]',
    association_source text NOT NULL DEFAULT 'direct'
        CHECK (association_source IN ('direct', 'related', 'both')),
    PRIMARY KEY (tenant, name)
);

CREATE TABLE permd.groups (
    tenant text NOT NULL REFERENCES permd.tenants (id) ON DELETE CASCADE,
    id text NOT NULL,
    create_objects boolean NOT NULL DEFAULT false,
    -- object name -> permissions, in the snapshot file's shape
    objects jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant, id)
);

CREATE TABLE permd.roles (
    tenant text NOT NULL REFERENCES permd.tenants (id) ON DELETE CASCADE,
    id text NOT NULL,
    groups text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant, id)
);

CREATE TABLE permd.users (
    tenant text NOT NULL REFERENCES permd.tenants (id) ON DELETE CASCADE,
    id text NOT NULL,
    admin boolean NOT NULL DEFAULT false,
    roles text[] NOT NULL DEFAULT '{}',
    groups text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant, id)
);

CREATE TABLE permd.integrations (
    tenant text NOT NULL REFERENCES permd.tenants (id) ON DELETE CASCADE,
    id text NOT NULL,
    groups text[] NOT NULL DEFAULT '{}',
    user_id text,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE permd.automations (
    tenant text NOT NULL REFERENCES permd.tenants (id) ON DELETE CASCADE,
    id text NOT NULL,
    run_as_user text,
    run_as_integration text,
    CHECK ((run_as_user IS NULL) <> (run_as_integration IS NULL)),
    PRIMARY KEY (tenant, id)
);

CREATE TABLE permd.records (
    tenant text NOT NULL REFERENCES permd.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    object text NOT NULL,
    owner text,
    -- team-association field -> user ids
    teams jsonb NOT NULL DEFAULT '{}',
    interactions text[] NOT NULL DEFAULT '{}',
    -- relationship field -> linked record ids
    links jsonb NOT NULL DEFAULT '{}',
    archived boolean NOT NULL DEFAULT false,
    -- Contact state in the snapshot file's shape; only on contacts
    contact jsonb,
    PRIMARY KEY (tenant, id)
);

-- The last revision, and how far the changelog has been pruned.
CREATE TABLE permd.revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    value bigint NOT NULL,
    pruned_through bigint NOT NULL DEFAULT 0
);
INSERT INTO permd.revision (value) VALUES (0);

-- One row per changed entity: the whole row after the change (`upsert`) or
-- nothing (`delete`), tagged with the writing transaction.
CREATE TABLE permd.changelog (
    seq bigserial PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tenant text NOT NULL,
    entity text NOT NULL,
    key text NOT NULL,
    op text NOT NULL CHECK (op IN ('upsert', 'delete')),
    payload jsonb
);
CREATE INDEX changelog_xid ON permd.changelog (xid);

-- One row per committed transaction that changed anything: its revision.
CREATE TABLE permd.transactions (
    revision bigint PRIMARY KEY,
    xid xid8 NOT NULL UNIQUE,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX transactions_committed_at ON permd.transactions (committed_at);

-- Logs one row change. TG_ARGV[0] names the entity.
CREATE FUNCTION permd.log_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entity text := TG_ARGV[0];
    old_row jsonb;
    new_row jsonb;
    old_tenant text;
    new_tenant text;
    old_key text;
    new_key text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_row := to_jsonb(OLD);
        old_tenant := CASE WHEN entity = 'tenant' THEN old_row ->> 'id' ELSE old_row ->> 'tenant' END;
        old_key := CASE WHEN entity = 'tenant' THEN '' ELSE coalesce(old_row ->> 'id', old_row ->> 'name') END;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_row := to_jsonb(NEW);
        new_tenant := CASE WHEN entity = 'tenant' THEN new_row ->> 'id' ELSE new_row ->> 'tenant' END;
        new_key := CASE WHEN entity = 'tenant' THEN '' ELSE coalesce(new_row ->> 'id', new_row ->> 'name') END;
    END IF;
    -- An update that changes nothing is not a change.
    IF old_row IS NOT NULL AND new_row IS NOT NULL AND old_row = new_row THEN
        RETURN NULL;
    END IF;
    -- A delete, or an update that moves the row to another key.
    IF old_row IS NOT NULL AND (new_row IS NULL OR old_tenant <> new_tenant OR old_key <> new_key) THEN
        INSERT INTO permd.changelog (tenant, entity, key, op) VALUES (old_tenant, entity, old_key, 'delete');
    END IF;
    IF new_row IS NOT NULL THEN
        INSERT INTO permd.changelog (tenant, entity, key, op, payload)
        VALUES (new_tenant, entity, new_key, 'upsert', new_row);
    END IF;
    -- Wakes the followers; notifications of one transaction are folded
    -- into one and delivered at commit.
    PERFORM pg_notify('permd_changes', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON permd.tenants
    FOR EACH ROW EXECUTE FUNCTION permd.log_change('tenant');
CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON permd.objects
    FOR EACH ROW EXECUTE FUNCTION permd.log_change('object');
CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON permd.groups
    FOR EACH ROW EXECUTE FUNCTION permd.log_change('group');
CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON permd.roles
    FOR EACH ROW EXECUTE FUNCTION permd.log_change('role');
CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON permd.users
    FOR EACH ROW EXECUTE FUNCTION permd.log_change('user');
CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON permd.integrations
    FOR EACH ROW EXECUTE FUNCTION permd.log_change('integration');
CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON permd.automations
    FOR EACH ROW EXECUTE FUNCTION permd.log_change('automation');
CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON permd.records
    FOR EACH ROW EXECUTE FUNCTION permd.log_change('record');

-- Takes the transaction's revision at commit (a deferred constraint trigger
-- runs just before commit). The row lock on permd.revision is held until
-- the commit completes, so the next writer gets the next revision only
-- after this one is visible: revisions are gap-free and in commit order.
-- Writers serialize only for their commit, not for their work.
CREATE FUNCTION permd.stamp_revision() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next bigint;
BEGIN
    IF current_setting('permd.stamped_xid', true) = pg_current_xact_id()::text THEN
        RETURN NULL;
    END IF;
    UPDATE permd.revision SET value = value + 1 RETURNING value INTO next;
    INSERT INTO permd.transactions (revision, xid) VALUES (next, pg_current_xact_id());
    PERFORM set_config('permd.stamped_xid', pg_current_xact_id()::text, true);
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER stamp_revision AFTER INSERT ON permd.changelog
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION permd.stamp_revision();
