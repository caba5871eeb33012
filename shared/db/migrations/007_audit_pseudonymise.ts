import type { Knex } from 'knex';
import { quoteIdentifier } from '../identifiers.js';
import { API_ROLE } from '../roles.js';

/**
 * GDPR erasure in an append-only trail. The chain hashes identities (actor, IP, a `user:<id>` target) only as keyed
 * pseudonyms (`pseudo:<32 hex>`), so replacing a raw identity by its pseudonym keeps every hash valid. This
 * migration lets exactly that through the append-only trigger: an UPDATE may change `actor`, `ip` and a `user:`
 * target only, each only to a value of the pseudonym form (a pseudonym already there is never replaced), and every
 * other column must stay as it was. Everything else still raises, for every caller including the owner. Only the
 * API role gets the column privilege `UPDATE (actor, ip, target)`; the audit writer stays INSERT-only and nobody
 * may DELETE or TRUNCATE. Whether a pseudonym is the right one is for `audit verify` to say: the hash covers it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE OR REPLACE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'UPDATE' THEN
        IF ROW(NEW.id, NEW.event_id, NEW.time, NEW.tenant_id, NEW.type, NEW.outcome, NEW.request_id,
               NEW.details, NEW.prev_hash, NEW.hash)
             IS NOT DISTINCT FROM
           ROW(OLD.id, OLD.event_id, OLD.time, OLD.tenant_id, OLD.type, OLD.outcome, OLD.request_id,
               OLD.details, OLD.prev_hash, OLD.hash)
          AND (NEW.actor IS NOT DISTINCT FROM OLD.actor
               OR (NEW.actor ~ '^pseudo:[0-9a-f]{32}$' AND OLD.actor IS NOT NULL AND OLD.actor NOT LIKE 'pseudo:%'))
          AND (NEW.ip IS NOT DISTINCT FROM OLD.ip
               OR (NEW.ip ~ '^pseudo:[0-9a-f]{32}$' AND OLD.ip IS NOT NULL AND OLD.ip NOT LIKE 'pseudo:%'))
          AND (NEW.target IS NOT DISTINCT FROM OLD.target
               OR (NEW.target ~ '^user:pseudo:[0-9a-f]{32}$' AND OLD.target LIKE 'user:%' AND OLD.target NOT LIKE 'user:pseudo:%'))
        THEN
          RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit_events is append-only: only actor, ip and a user target may be replaced, and only by pseudonyms'
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END;
    $$;
    GRANT UPDATE (actor, ip, target) ON audit_events TO ${quoteIdentifier(API_ROLE)};
    -- appendAuditEvents asks whether an actor has been erased: data.erase rows by their subject pseudonym.
    CREATE INDEX audit_events_erased_subject_idx ON audit_events ((details->>'subject')) WHERE type = 'data.erase';
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP INDEX IF EXISTS audit_events_erased_subject_idx;
    REVOKE UPDATE (actor, ip, target) ON audit_events FROM ${quoteIdentifier(API_ROLE)};
    CREATE OR REPLACE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END;
    $$;
  `);
}
