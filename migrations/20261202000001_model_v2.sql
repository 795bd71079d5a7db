-- Model v2 (docs/model.md "Migrating v1 data"): the v1 rows rewritten into the
-- v2 shape, with the same mapping as src/model/migrate.rs (`permd
-- migrate-data` for files): keep the two in step.
--
-- What needs a human (a group entry with no record access on an object, an
-- upload toggle in a group without an edit scope, a contacts email level
-- v2 would change, a created field at edit, an integration with both groups
-- and a user, a taken service-account name, contacts with an owner) is
-- never guessed: the migration fails, listing the problems, and because
-- sqlx runs each migration in one transaction the database stays on v1,
-- untouched, until they are fixed and `permd migrate` runs again.
--
-- The changelog: the rewrites below ARE logged. The row triggers stay on,
-- so every row the migration changes is an upsert with its v2 payload, and
-- the whole migration is one transaction, hence one revision (stamped at
-- commit). Not logging them would break what a revision means: the rows
-- would change under the same revision number, so a sidecar holding that
-- revision (a follower that was running across the upgrade, or one that
-- resumes after a lost connection) would believe it is current while it
-- holds v1 rows, and nothing would ever tell it otherwise; a v2 sidecar
-- bootstrapped afterwards would claim the same revision with other data.
-- Logged, a follower that can read v2 rows replays the migration and ends
-- up with exactly the v2 rows; a v1 sidecar stops on the first v2 payload
-- (its feed refuses rows it cannot decode) and keeps serving its last v1
-- revision, loudly, until it is restarted as v2. Pre-migration changelog
-- rows keep their v1 payloads; no v2 sidecar reads them, since it checks
-- the schema before bootstrapping, so it starts at or after this revision.
-- Column changes are not row changes and log nothing: the new user columns
-- take their defaults, which is what a v2 reader assumes for a user row
-- without them, and every integration row is rewritten below after its
-- `groups` column is gone, so each is logged in its v2 shape.

-- Rank of an access level; absent means none (v1's default), v1's delete
-- is remove. NULL for a value that is not a level.
CREATE FUNCTION pg_temp.v2_rank(level jsonb) RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN level IS NULL OR level = 'null'::jsonb THEN 0
        WHEN jsonb_typeof(level) <> 'string' THEN NULL
        ELSE array_position(
            ARRAY['none', 'view', 'edit', 'remove'],
            CASE WHEN level #>> '{}' = 'delete' THEN 'remove' ELSE level #>> '{}' END
        ) - 1
    END
$$;

-- One group entry (groups.objects -> object): the v2 entry, and the
-- problems a human must decide.
CREATE FUNCTION pg_temp.v2_entry(
    tenant text, grp text, object text, entry jsonb,
    OUT migrated jsonb, OUT problems text[]
) LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    at text := format('tenant ''%s'', group ''%s'', object ''%s''', tenant, grp, object);
    e jsonb := entry;
    all_r int;
    assoc int;
    edit boolean;
    email text;
    how text;
BEGIN
    problems := '{}';
    migrated := entry;
    IF jsonb_typeof(e) IS DISTINCT FROM 'object' THEN
        RETURN;
    END IF;
    -- Renames that mean the same in both models.
    IF e ->> 'all_records' = 'delete' THEN
        e := jsonb_set(e, '{all_records}', '"remove"');
    END IF;
    IF e ->> 'associated_records' = 'delete' THEN
        e := jsonb_set(e, '{associated_records}', '"remove"');
    END IF;
    IF jsonb_typeof(e -> 'fields') = 'object' THEN
        e := jsonb_set(e, '{fields}', (
            SELECT coalesce(jsonb_object_agg(
                       key, CASE WHEN value = '"hidden"' THEN '"none"'::jsonb ELSE value END), '{}')
            FROM jsonb_each(e -> 'fields')));
        IF (e -> 'fields') ? '*' AND NOT (e ? 'default_for_new_field') THEN
            e := jsonb_set(e, '{default_for_new_field}', e -> 'fields' -> '*');
            e := jsonb_set(e, '{fields}', (e -> 'fields') - '*');
            IF e -> 'fields' = '{}' THEN
                e := e - 'fields';
            END IF;
        END IF;
    END IF;
    migrated := e;
    all_r := pg_temp.v2_rank(e -> 'all_records');
    assoc := pg_temp.v2_rank(e -> 'associated_records');
    IF all_r IS NULL OR assoc IS NULL THEN
        RETURN;  -- not a level: v2 refuses it by itself
    END IF;
    -- Associated records are a subset of all records: raising never widens.
    assoc := greatest(assoc, all_r);
    IF assoc = 0 THEN
        problems := problems || format(
            '%s: the group gives no record access on it (all_records and associated_records none); '
            'v2''s My Associated Records is at least view: set associated_records: view '
            '(this widens access to associated records) or drop the object from the group', at);
    ELSE
        e := jsonb_set(e, '{associated_records}',
                       to_jsonb((ARRAY['none', 'view', 'edit', 'remove'])[assoc + 1]));
    END IF;
    -- v1's create and upload needed edit in some scope; unarchive needed
    -- delete in a scope reaching the record.
    edit := all_r >= 2 OR assoc >= 2;
    IF edit THEN
        e := e || '{"create_record": true}';
    END IF;
    IF jsonb_typeof(e -> 'actions') = 'array' AND (e -> 'actions') ? 'upload' THEN
        IF edit THEN
            e := jsonb_set(e, '{actions}', (e -> 'actions') - 'upload');
            IF e -> 'actions' = '[]' THEN
                e := e - 'actions';
            END IF;
            e := e || '{"bulk_data_upload": true}';
        ELSE
            -- v1 unions groups: this toggle allowed upload to every member
            -- that gets edit on the object from another group.
            problems := problems || format(
                '%s: ''upload'' is on but no scope of this group is edit or more, so v2 cannot make it '
                'bulk_data_upload (which needs create_record); in v1 it allowed upload to members that '
                'get edit on this object from another group: drop ''upload'' from this group, or give the '
                'group a scope at edit (then create_record and bulk_data_upload)', at);
        END IF;
    END IF;
    IF all_r = 3 THEN
        e := e || '{"unarchive_all": true}';
    END IF;
    IF assoc = 3 THEN
        e := e || '{"unarchive_associated": true}';
    END IF;
    migrated := e;
    -- R7's catalog rules on contacts email and custom objects' created.
    -- v2 fixes email's level from the group's scopes; where v1 gave the
    -- group another level (stated, through '*', or hidden by default) v2
    -- would widen or narrow it, so a human decides.
    IF object <> 'contacts' THEN
        IF e -> 'fields' ->> 'created' = 'edit' THEN
            problems := problems || format(
                '%s: field ''created'' is stated ''edit''; in v2 every custom object has a system field '
                '''created'' that is at most view (R7): set created: view (or none)', at);
        END IF;
        RETURN;
    END IF;
    email := e -> 'fields' ->> 'email';
    how := 'stated';
    IF email IS NULL THEN
        email := e ->> 'default_for_new_field';
        how := 'through ''*''';
    END IF;
    IF email IS NULL THEN
        email := 'none';
        how := 'hidden by default';
    END IF;
    IF edit AND email <> 'edit' THEN
        problems := problems || format(
            '%s: email is ''%s'' (%s), but v2 makes email edit in a group whose all_records or '
            'associated_records is edit or more (R7): set email: edit to accept that, or lower the '
            'group''s record levels to view', at, email, how);
    ELSIF NOT edit AND email = 'edit' THEN
        problems := problems || format(
            '%s: email is ''edit'' (%s), but without edit record access v2 allows email at most view '
            '(R7): set email: view (or none) to accept that, or give the group edit record access',
            at, how);
    END IF;
END
$$;

-- Everything the migration has to say, in a stable order. v2 integrations
-- act as a user: each v1 integration gets a service-account user of its
-- own, `integration-<id>`, holding exactly its v1 groups (none if it had
-- none), so no integration gains access by acting as someone else.
CREATE FUNCTION pg_temp.v2_findings()
RETURNS TABLE (problem boolean, tenant text, entity int, key text, message text)
LANGUAGE sql STABLE AS $$
    WITH entries AS (
        SELECT g.tenant, g.id || ' ' || o.key AS key, x.problems
        FROM permd.groups g
        CROSS JOIN LATERAL jsonb_each(g.objects) o
        CROSS JOIN LATERAL pg_temp.v2_entry(g.tenant, g.id, o.key, o.value) x
    ), integrations AS (
        SELECT i.tenant, i.id, i.user_id, i.groups, 'integration-' || i.id AS service,
               format('tenant ''%s'', integration ''%s''', i.tenant, i.id) AS at,
               cardinality(i.groups) > 0 AND i.user_id IS NOT NULL AS groups_and_user,
               EXISTS (SELECT 1 FROM permd.users u
                       WHERE u.tenant = i.tenant AND u.id = 'integration-' || i.id) AS taken
        FROM permd.integrations i
    ), owned AS (
        SELECT r.tenant, count(*) AS n
        FROM permd.records r
        WHERE r.object = 'contacts' AND r.owner IS NOT NULL
        GROUP BY r.tenant
    )
    SELECT true, tenant, 1, key, p FROM entries, unnest(problems) p
    UNION ALL
    SELECT true, tenant, 2, id, CASE
        WHEN groups_and_user THEN format(
            '%s: it has groups of its own (%s) and user ''%s''; v2 integrations act as their user: '
            'give ''%s'' these groups, or make a service-account user that holds them and set it as '
            'the integration''s user', at, array_to_string(groups, ', '), user_id, user_id)
        ELSE format(
            '%s: v2 integrations act as a user, and the migration would make the service-account '
            'user ''%s'' for it, but a user ''%s'' exists already: rename that user, or set '
            'the integration''s user yourself', at, service, service)
        END
    FROM integrations WHERE groups_and_user OR taken
    UNION ALL
    SELECT false, tenant, 2, id, CASE
        WHEN user_id IS NULL AND cardinality(groups) > 0 THEN format(
            '%s: its groups (%s) moved to the new service-account user ''%s'', which it now acts as',
            at, array_to_string(groups, ', '), service)
        WHEN user_id IS NOT NULL THEN format(
            '%s: v1 gave it no permissions (no groups; user ''%s'' only associated it with records); '
            'it now acts as the new service-account user ''%s'' with no groups; in v2 it could '
            'act as ''%s'' instead (user: %s) if that was meant', at, user_id, service, user_id, user_id)
        ELSE format(
            '%s: it had no groups and no user (no permissions); it now acts as the new '
            'service-account user ''%s'' with no groups', at, service)
        END
    FROM integrations WHERE NOT (groups_and_user OR taken)
    UNION ALL
    SELECT true, o.tenant, 3, '', format(
        'tenant ''%s'': %s contacts records have an owner (first ids: %s): contacts have no owner '
        'in model v2: put the owner in a team field of contacts (e.g. sales_team) or in interactions',
        o.tenant, o.n, (
            SELECT string_agg(f.id, ', ' ORDER BY f.id)
            FROM (SELECT r.id::text AS id FROM permd.records r
                  WHERE r.tenant = o.tenant AND r.object = 'contacts' AND r.owner IS NOT NULL
                  ORDER BY 1 LIMIT 3) f))
    FROM owned o
$$;

-- Refuse before changing anything.
DO $$
DECLARE
    problems text[];
    notes text[];
BEGIN
    SELECT coalesce(array_agg(message ORDER BY tenant, entity, key, message), '{}')
        INTO problems FROM pg_temp.v2_findings() WHERE problem;
    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION '%', format(
            E'model v2 migration refused: %s problem(s) in the v1 data need a decision; nothing was '
            'changed and the database stays on v1:\n  - %s%s\n'
            'Fix each in the v1 tables as it says (an integration with both groups and a user: set '
            'its user_id to NULL to move the groups to a new service-account user ''integration-<id>'', '
            'or clear its groups and set its user after the upgrade; contacts owners: move them into '
            'a team field or interactions and set owner to NULL), then run `permd migrate` again.',
            cardinality(problems),
            array_to_string(problems[1:20], E'\n  - '),
            CASE WHEN cardinality(problems) > 20
                 THEN format(E'\n  - ... and %s more', cardinality(problems) - 20) ELSE '' END);
    END IF;
    SELECT coalesce(array_agg(message ORDER BY tenant, entity, key, message), '{}')
        INTO notes FROM pg_temp.v2_findings() WHERE NOT problem;
    IF cardinality(notes) > 0 THEN
        RAISE NOTICE '%', format(E'model v2 migration: %s rewrite(s) whose meaning changed slightly:\n  - %s',
                                 cardinality(notes), array_to_string(notes, E'\n  - '));
    END IF;
END
$$;

UPDATE permd.groups g
SET objects = m.objects
FROM (
    SELECT g2.tenant, g2.id,
           jsonb_object_agg(o.key, (pg_temp.v2_entry(g2.tenant, g2.id, o.key, o.value)).migrated) AS objects
    FROM permd.groups g2
    CROSS JOIN LATERAL jsonb_each(g2.objects) o
    GROUP BY g2.tenant, g2.id
) m
WHERE g.tenant = m.tenant AND g.id = m.id AND g.objects IS DISTINCT FROM m.objects;

ALTER TABLE permd.users
    ADD COLUMN service_account boolean NOT NULL DEFAULT false,
    ADD COLUMN email_inbox text NOT NULL DEFAULT 'connected'
        CHECK (email_inbox IN ('connected', 'not_connected', 'blocked'));

-- The users first (they need the groups), then the column goes, then the
-- integrations point at them: their logged rows are v2-shaped.
INSERT INTO permd.users (tenant, id, groups, service_account)
SELECT tenant, 'integration-' || id, groups, true FROM permd.integrations;

ALTER TABLE permd.integrations DROP COLUMN groups;

UPDATE permd.integrations SET user_id = 'integration-' || id;

ALTER TABLE permd.integrations ALTER COLUMN user_id SET NOT NULL;

DROP FUNCTION pg_temp.v2_findings();
DROP FUNCTION pg_temp.v2_entry(text, text, text, jsonb);
DROP FUNCTION pg_temp.v2_rank(jsonb);
