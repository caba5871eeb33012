import type { Knex } from 'knex';

/**
 * The hash-chained audit trail. `id` (bigserial) is the chain order. The table is append-only: a trigger refuses
 * every UPDATE, DELETE and TRUNCATE, whoever the caller is (even the owner), on top of the grants in 005.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE audit_events (
      id bigserial PRIMARY KEY,
      event_id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
      time timestamptz NOT NULL DEFAULT now(),
      tenant_id uuid NULL,
      actor text NULL,
      type text NOT NULL,
      target text NULL,
      outcome text NOT NULL,
      ip text NULL,
      request_id text NULL,
      details jsonb NOT NULL DEFAULT '{}'::jsonb,
      prev_hash text NOT NULL,
      hash text NOT NULL
    );
    CREATE INDEX audit_events_type_idx ON audit_events (type);
    CREATE INDEX audit_events_actor_idx ON audit_events (actor);
    CREATE INDEX audit_events_time_idx ON audit_events (time);

    CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END;
    $$;
    CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
      FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
      FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS audit_events; DROP FUNCTION IF EXISTS audit_events_refuse_change();');
}
