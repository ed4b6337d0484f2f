ALTER TABLE "accounts" DROP CONSTRAINT "accounts_tenant_id_tenants_id_fk";
--> statement-breakpoint
ALTER TABLE "activities" DROP CONSTRAINT "activities_tenant_id_tenants_id_fk";
--> statement-breakpoint
ALTER TABLE "people" DROP CONSTRAINT "people_tenant_id_tenants_id_fk";
--> statement-breakpoint
-- people, accounts and activities keep the rules of a foreign key to tenants, checked a statement
-- at a time instead of a row at a time (Postgres runs a declared key's check once per inserted
-- row, which cost a sync about as much as the row's own indexes):
--   - every inserted row's tenant exists, and stays until the statement's transaction ends
--     (its tenants row is locked FOR KEY SHARE, as a foreign key check locks it);
--   - a row moved to another tenant needs that tenant to exist, likewise;
--   - deleting a tenant deletes its records; changing a tenant's id is refused while it has any.
-- A tenant's own rows are visible to these checks under row-level security: an inserted row
-- passed its table's policy, so its tenant is the transaction's app.tenant_id; the delete and
-- the id change look at the tenant's records as that tenant, for the function call only.
CREATE FUNCTION gtm_record_tenants_exist() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp
AS $$
DECLARE
  tenant text;
BEGIN
  FOR tenant IN SELECT DISTINCT n.tenant_id FROM new_rows n LOOP
    PERFORM 1 FROM tenants t WHERE t.id = tenant FOR KEY SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'insert or update on table "%" names tenant "%", which does not exist', TG_TABLE_NAME, tenant
        USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, COLUMN = 'tenant_id';
    END IF;
  END LOOP;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION gtm_record_tenant_moved() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp
AS $$
BEGIN
  PERFORM 1 FROM tenants t WHERE t.id = NEW.tenant_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'insert or update on table "%" names tenant "%", which does not exist', TG_TABLE_NAME, NEW.tenant_id
      USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, COLUMN = 'tenant_id';
  END IF;
  RETURN NEW;
END $$;
--> statement-breakpoint
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['people', 'accounts', 'activities']
  LOOP
    EXECUTE format(
      'CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gtm_record_tenants_exist()',
      t || '_tenant_exists', t
    );
    EXECUTE format(
      'CREATE TRIGGER %I BEFORE UPDATE OF tenant_id ON %I FOR EACH ROW WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id) EXECUTE FUNCTION gtm_record_tenant_moved()',
      t || '_tenant_moved', t
    );
  END LOOP;
END $$;
--> statement-breakpoint
-- The SET clause makes the set_config below last for the call only.
CREATE FUNCTION gtm_tenant_records_follow() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp SET app.tenant_id = ''
AS $$
BEGIN
  PERFORM set_config('app.tenant_id', OLD.id, true);
  IF TG_OP = 'DELETE' THEN
    DELETE FROM people WHERE tenant_id = OLD.id;
    DELETE FROM accounts WHERE tenant_id = OLD.id;
    DELETE FROM activities WHERE tenant_id = OLD.id;
    RETURN OLD;
  END IF;
  IF EXISTS (SELECT 1 FROM people WHERE tenant_id = OLD.id)
    OR EXISTS (SELECT 1 FROM accounts WHERE tenant_id = OLD.id)
    OR EXISTS (SELECT 1 FROM activities WHERE tenant_id = OLD.id) THEN
    RAISE EXCEPTION 'tenant "%" has records, so its id cannot change', OLD.id
      USING ERRCODE = 'foreign_key_violation', TABLE = 'tenants', COLUMN = 'id';
  END IF;
  RETURN NEW;
END $$;
--> statement-breakpoint
CREATE TRIGGER tenants_records_deleted AFTER DELETE ON tenants FOR EACH ROW EXECUTE FUNCTION gtm_tenant_records_follow();
--> statement-breakpoint
CREATE TRIGGER tenants_id_kept BEFORE UPDATE OF id ON tenants FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION gtm_tenant_records_follow();
