import type { Knex } from 'knex';
import { quoteIdentifier } from '../identifiers.js';
import { API_ROLE, AUDIT_ROLE } from '../roles.js';

/**
 * Key ids and audit verification as a job.
 *
 * - `audit_events.key_id`: the kid of the key set a row was hashed with, so that rows hashed before a rotation of
 *   BOTSERVER_JWT_SECRET still verify with the previous key. Rows written before this migration keep NULL (they
 *   are verified with any configured key set). The append-only trigger of 007 now also keeps `key_id` as it is.
 * - `audit_verify_runs`: the runs of the verify job. The API creates them (and marks a lost one failed); the audit
 *   worker moves them on.
 * - `audit_checkpoints`: signed positions the chain was verified up to; the audit worker appends them, nobody
 *   changes them.
 */
export async function up(knex: Knex): Promise<void> {
  const api = quoteIdentifier(API_ROLE);
  const audit = quoteIdentifier(AUDIT_ROLE);
  await knex.raw(`
    ALTER TABLE audit_events ADD COLUMN key_id text NULL;

    CREATE OR REPLACE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'UPDATE' THEN
        IF ROW(NEW.id, NEW.event_id, NEW.time, NEW.tenant_id, NEW.type, NEW.outcome, NEW.request_id,
               NEW.details, NEW.prev_hash, NEW.hash, NEW.key_id)
             IS NOT DISTINCT FROM
           ROW(OLD.id, OLD.event_id, OLD.time, OLD.tenant_id, OLD.type, OLD.outcome, OLD.request_id,
               OLD.details, OLD.prev_hash, OLD.hash, OLD.key_id)
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

    CREATE TABLE audit_verify_runs (
      id uuid PRIMARY KEY,
      state text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
      full_walk boolean NOT NULL DEFAULT false,
      ok boolean NULL,
      checked bigint NULL,
      first_broken_id bigint NULL,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      started_at timestamptz NULL,
      finished_at timestamptz NULL
    );
    CREATE INDEX audit_verify_runs_created_idx ON audit_verify_runs (created_at DESC);
    CREATE INDEX audit_verify_runs_open_idx ON audit_verify_runs (created_at) WHERE state IN ('queued', 'running');

    CREATE TABLE audit_checkpoints (
      id bigserial PRIMARY KEY,
      last_id bigint NOT NULL,
      last_hash text NOT NULL,
      checked bigint NOT NULL,
      key_id text NOT NULL,
      signature text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );

    REVOKE ALL ON audit_verify_runs, audit_checkpoints FROM PUBLIC;
    GRANT SELECT, INSERT, UPDATE ON audit_verify_runs TO ${api};
    GRANT SELECT ON audit_checkpoints TO ${api};
    GRANT SELECT, UPDATE ON audit_verify_runs TO ${audit};
    GRANT SELECT, INSERT ON audit_checkpoints TO ${audit};
    GRANT USAGE ON SEQUENCE audit_checkpoints_id_seq TO ${audit};
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE IF EXISTS audit_checkpoints;
    DROP TABLE IF EXISTS audit_verify_runs;
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
    ALTER TABLE audit_events DROP COLUMN IF EXISTS key_id;
  `);
}
