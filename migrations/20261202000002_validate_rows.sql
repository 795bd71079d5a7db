-- Rows permd could not read are refused where they are written: a writer
-- (psql, the platform's own code) gets an error at once, and nothing
-- reaches the changelog. These are the rules one row must keep on its own,
-- the same as `permd::model::validate::entity_problems` in Rust; a test
-- (tests/postgres_validation.rs) holds the two to the same verdict on
-- generated rows. Rules that need other rows (a grant naming a group that
-- does not exist, a field the object lacks) are checked by permd when it
-- applies the change; a change that still fails there holds back only its
-- tenant (README "Bad data holds back only its tenant").
--
-- `SET LOCAL permd.skip_validation = 'on'` turns the checks off for one
-- transaction. It exists for tests that simulate a writer of another
-- version; nothing else should use it.

CREATE FUNCTION permd.fail(tenant text, entity text, key text, problem text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'permd: tenant %, % %: %', tenant, entity, key, problem
        USING ERRCODE = 'check_violation';
END $$;

CREATE FUNCTION permd.skipping() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('permd.skip_validation', true), '') = 'on'
$$;

-- Keys of `value` not in `allowed`, as one text ('' when none).
CREATE FUNCTION permd.unknown_keys(value jsonb, allowed text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(string_agg(k, ', ' ORDER BY k), '')
    FROM jsonb_object_keys(value) AS k WHERE NOT k = ANY (allowed)
$$;

CREATE FUNCTION permd.is_bool(value jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT value IS NULL OR jsonb_typeof(value) = 'boolean'
$$;

CREATE FUNCTION permd.is_strings(value jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT value IS NULL OR (jsonb_typeof(value) = 'array'
        AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(value) e
                        WHERE jsonb_typeof(e) <> 'string'))
$$;

CREATE FUNCTION permd.level_rank(value jsonb) RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE value #>> '{}'
        WHEN 'none' THEN 0 WHEN 'view' THEN 1 WHEN 'edit' THEN 2 WHEN 'remove' THEN 3 END
$$;

-- A group's settings on one object (R5, R5b, R6, R7): the problem, or NULL.
CREATE FUNCTION permd.object_permissions_problem(object text, p jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    unknown text;
    all_rank int;
    assoc_rank int;
    toggle jsonb;
    field text;
    level jsonb;
    contacts_only text[] := ARRAY['send_single_message', 'team_associations',
        'subscription_lists', 'view_timeline', 'bulk_send_email', 'bulk_send_text',
        'bulk_send_survey', 'bulk_change_tags', 'bulk_manage_subscription'];
    toggles text[] := ARRAY['export', 'modify_automation', 'bulk_export', 'bulk_archive',
        'bulk_change_field_values', 'bulk_modify_automation'] || contacts_only;
BEGIN
    IF jsonb_typeof(p) <> 'object' THEN
        RETURN format('objects.%s is not a map of settings', object);
    END IF;
    unknown := permd.unknown_keys(p, ARRAY['view_object', 'edit_settings', 'delete_object',
        'all_records', 'associated_records', 'create_record', 'bulk_data_upload',
        'unarchive_associated', 'unarchive_all', 'actions', 'default_for_new_field', 'fields']);
    IF unknown <> '' THEN
        RETURN format('objects.%s: unknown setting(s) %s', object, unknown);
    END IF;
    IF NOT (permd.is_bool(p->'view_object') AND permd.is_bool(p->'edit_settings')
            AND permd.is_bool(p->'delete_object') AND permd.is_bool(p->'create_record')
            AND permd.is_bool(p->'bulk_data_upload') AND permd.is_bool(p->'unarchive_associated')
            AND permd.is_bool(p->'unarchive_all')) THEN
        RETURN format('objects.%s: a switch that is not true or false', object);
    END IF;
    all_rank := CASE WHEN p ? 'all_records' THEN permd.level_rank(p->'all_records') ELSE 0 END;
    assoc_rank := CASE WHEN p ? 'associated_records' THEN permd.level_rank(p->'associated_records') ELSE 0 END;
    IF all_rank IS NULL OR assoc_rank IS NULL THEN
        RETURN format('objects.%s: a level that is not none, view, edit or remove', object);
    END IF;
    IF assoc_rank = 0 THEN
        RETURN format('objects.%s.associated_records is missing or none (R5)', object);
    END IF;
    IF assoc_rank < all_rank THEN
        RETURN format('objects.%s.associated_records is below all_records (R5)', object);
    END IF;
    IF coalesce((p->>'create_record')::boolean, false) AND assoc_rank < 2 THEN
        RETURN format('objects.%s.create_record needs associated_records edit or remove (R5b)', object);
    END IF;
    IF coalesce((p->>'bulk_data_upload')::boolean, false)
       AND NOT coalesce((p->>'create_record')::boolean, false) THEN
        RETURN format('objects.%s.bulk_data_upload needs create_record (R5b)', object);
    END IF;
    IF coalesce((p->>'unarchive_all')::boolean, false)
       AND NOT coalesce((p->>'unarchive_associated')::boolean, false) THEN
        RETURN format('objects.%s.unarchive_all needs unarchive_associated (R5b)', object);
    END IF;
    IF p ? 'actions' THEN
        IF jsonb_typeof(p->'actions') <> 'array' THEN
            RETURN format('objects.%s.actions is not a list', object);
        END IF;
        FOR toggle IN SELECT * FROM jsonb_array_elements(p->'actions') LOOP
            IF jsonb_typeof(toggle) <> 'string' OR NOT (toggle #>> '{}') = ANY (toggles) THEN
                RETURN format('objects.%s.actions: %s is not an action toggle', object, toggle);
            END IF;
            IF object <> 'contacts' AND (toggle #>> '{}') = ANY (contacts_only) THEN
                RETURN format('objects.%s.actions: %s exists only on contacts', object, toggle);
            END IF;
        END LOOP;
    END IF;
    IF p ? 'default_for_new_field' AND (jsonb_typeof(p->'default_for_new_field') <> 'string'
        OR NOT (p->>'default_for_new_field') IN ('none', 'view', 'edit')) THEN
        RETURN format('objects.%s.default_for_new_field is not none, view or edit', object);
    END IF;
    IF p ? 'fields' THEN
        IF jsonb_typeof(p->'fields') <> 'object' THEN
            RETURN format('objects.%s.fields is not a map', object);
        END IF;
        FOR field, level IN SELECT * FROM jsonb_each(p->'fields') LOOP
            IF jsonb_typeof(level) <> 'string' OR NOT (level #>> '{}') IN ('none', 'view', 'edit') THEN
                RETURN format('objects.%s.fields.%s is not none, view or edit', object, field);
            END IF;
            IF field = '*' THEN
                RETURN format('objects.%s.fields: "*" is v1: use default_for_new_field', object);
            END IF;
        END LOOP;
        IF object = 'contacts' AND p->'fields' ? 'email' THEN
            IF greatest(all_rank, assoc_rank) >= 2 AND p->'fields'->>'email' <> 'edit' THEN
                RETURN 'objects.contacts.fields.email must be edit when a scope is edit or remove (R7)';
            END IF;
            IF greatest(all_rank, assoc_rank) < 2 AND p->'fields'->>'email' = 'edit' THEN
                RETURN 'objects.contacts.fields.email is at most view when no scope is edit (R7)';
            END IF;
        END IF;
        IF object <> 'contacts' AND p->'fields'->>'created' = 'edit' THEN
            RETURN format('objects.%s.fields.created is none or view only (R7)', object);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION permd.validate_group() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    object text;
    settings jsonb;
    problem text;
BEGIN
    IF permd.skipping() THEN RETURN NEW; END IF;
    IF jsonb_typeof(NEW.objects) <> 'object' THEN
        PERFORM permd.fail(NEW.tenant, 'group', NEW.id, 'objects is not a map of object name to settings');
    END IF;
    FOR object, settings IN SELECT * FROM jsonb_each(NEW.objects) LOOP
        problem := permd.object_permissions_problem(object, settings);
        IF problem IS NOT NULL THEN
            PERFORM permd.fail(NEW.tenant, 'group', NEW.id, problem);
        END IF;
    END LOOP;
    RETURN NEW;
END $$;

-- A Contact's state (R12-R14): the problem, or NULL.
CREATE FUNCTION permd.contact_problem(c jsonb) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    unknown text;
BEGIN
    IF jsonb_typeof(c) <> 'object' THEN
        RETURN 'contact is not a map';
    END IF;
    unknown := permd.unknown_keys(c, ARRAY['email', 'email_valid', 'email_status', 'suppressed',
        'suppressed_until', 'opted_out_lists', 'mobile_phone', 'mobile_valid', 'sms_opted_out']);
    IF unknown <> '' THEN
        RETURN format('contact: unknown key(s) %s', unknown);
    END IF;
    IF NOT (permd.is_bool(c->'email_valid') AND permd.is_bool(c->'suppressed')
            AND permd.is_bool(c->'mobile_valid') AND permd.is_bool(c->'sms_opted_out')) THEN
        RETURN 'contact: a flag that is not true or false';
    END IF;
    IF (c ? 'email' AND jsonb_typeof(c->'email') NOT IN ('string', 'null'))
       OR (c ? 'mobile_phone' AND jsonb_typeof(c->'mobile_phone') NOT IN ('string', 'null')) THEN
        RETURN 'contact: email and mobile_phone are text';
    END IF;
    IF c ? 'email_status' AND (jsonb_typeof(c->'email_status') <> 'string' OR NOT (c->>'email_status') IN
        ('not_opted_in', 'opted_in', 'opted_out', 'unsubscribed_all', 'suppressed')) THEN
        RETURN 'contact.email_status is not one of not_opted_in, opted_in, opted_out, unsubscribed_all, suppressed';
    END IF;
    IF NOT permd.is_strings(c->'opted_out_lists') THEN
        RETURN 'contact.opted_out_lists is not a list of names';
    END IF;
    IF c ? 'suppressed_until' AND jsonb_typeof(c->'suppressed_until') <> 'null' THEN
        IF jsonb_typeof(c->'suppressed_until') <> 'string' OR NOT (c->>'suppressed_until') ~
            '^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$' THEN
            RETURN 'contact.suppressed_until is not an RFC 3339 time';
        END IF;
        BEGIN
            PERFORM (c->>'suppressed_until')::timestamptz;
        EXCEPTION WHEN others THEN
            RETURN 'contact.suppressed_until is not a valid time';
        END;
        IF NOT coalesce((c->>'suppressed')::boolean, false)
           AND coalesce(c->>'email_status', '') <> 'suppressed' THEN
            RETURN 'contact.suppressed_until needs suppressed: true (or email_status: suppressed)';
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION permd.validate_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    team text;
    members jsonb;
    problem text;
BEGIN
    IF permd.skipping() THEN RETURN NEW; END IF;
    IF NEW.object = 'contacts' AND NEW.owner IS NOT NULL THEN
        PERFORM permd.fail(NEW.tenant, 'record', NEW.id::text,
            'contacts have no owner (R8): put the owner in a team field or in interactions');
    END IF;
    IF jsonb_typeof(NEW.teams) <> 'object' THEN
        PERFORM permd.fail(NEW.tenant, 'record', NEW.id::text, 'teams is not a map of team field to users');
    END IF;
    FOR team, members IN SELECT * FROM jsonb_each(NEW.teams) LOOP
        IF NOT permd.is_strings(members) OR members IS NULL OR jsonb_typeof(members) <> 'array' THEN
            PERFORM permd.fail(NEW.tenant, 'record', NEW.id::text, format('teams.%s is not a list of users', team));
        END IF;
    END LOOP;
    IF jsonb_typeof(NEW.links) <> 'object' THEN
        PERFORM permd.fail(NEW.tenant, 'record', NEW.id::text, 'links is not a map of relationship field to record ids');
    END IF;
    FOR team, members IN SELECT * FROM jsonb_each(NEW.links) LOOP
        IF jsonb_typeof(members) <> 'array' OR EXISTS (
            SELECT 1 FROM jsonb_array_elements(members) e
            WHERE jsonb_typeof(e) <> 'string' OR NOT (e #>> '{}') ~*
                '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$') THEN
            PERFORM permd.fail(NEW.tenant, 'record', NEW.id::text, format('links.%s is not a list of record ids', team));
        END IF;
    END LOOP;
    IF NEW.contact IS NOT NULL AND jsonb_typeof(NEW.contact) <> 'null' THEN
        IF NEW.object <> 'contacts' THEN
            PERFORM permd.fail(NEW.tenant, 'record', NEW.id::text, 'contact state is only for contacts records');
        END IF;
        problem := permd.contact_problem(NEW.contact);
        IF problem IS NOT NULL THEN
            PERFORM permd.fail(NEW.tenant, 'record', NEW.id::text, problem);
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER validate BEFORE INSERT OR UPDATE ON permd.groups
    FOR EACH ROW EXECUTE FUNCTION permd.validate_group();
CREATE TRIGGER validate BEFORE INSERT OR UPDATE ON permd.records
    FOR EACH ROW EXECUTE FUNCTION permd.validate_record();
