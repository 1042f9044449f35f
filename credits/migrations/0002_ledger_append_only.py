"""The ledger is append-only, enforced by the database: a trigger refuses UPDATE and DELETE of
`credits_credittransaction` whoever runs them (the ORM, raw SQL, a cascade, psql)."""

from django.db import migrations

INSTALL_SQL = """
CREATE OR REPLACE FUNCTION credits_transaction_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credits_credittransaction is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'Correct the ledger with a new transaction (an adjustment or a refund).';
END;
$$;
DROP TRIGGER IF EXISTS credits_transaction_append_only ON credits_credittransaction;
CREATE TRIGGER credits_transaction_append_only
    BEFORE UPDATE OR DELETE ON credits_credittransaction
    FOR EACH ROW EXECUTE FUNCTION credits_transaction_append_only();
"""

REMOVE_SQL = """
DROP TRIGGER IF EXISTS credits_transaction_append_only ON credits_credittransaction;
DROP FUNCTION IF EXISTS credits_transaction_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("credits", "0001_initial")]

    operations = [migrations.RunSQL(INSTALL_SQL, REMOVE_SQL)]
