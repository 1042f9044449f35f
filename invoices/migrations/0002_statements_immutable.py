"""An issued statement is immutable, enforced by the database: triggers refuse any UPDATE or
DELETE of an issued statement, and any INSERT, UPDATE or DELETE of its lines, whoever runs them
(the ORM, raw SQL, a cascade, psql). A statement is written as a draft and issued in the same
transaction, so nobody ever sees it as a draft. Stripe invoices (kind `stripe`) follow Stripe."""

from django.db import migrations

INSTALL_SQL = """
CREATE OR REPLACE FUNCTION invoices_statement_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.kind = 'statement' AND OLD.status <> 'draft' THEN
        RAISE EXCEPTION 'statement % is issued and immutable: % refused', OLD.number, TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS invoices_statement_immutable ON invoices_invoice;
CREATE TRIGGER invoices_statement_immutable
    BEFORE UPDATE OR DELETE ON invoices_invoice
    FOR EACH ROW EXECUTE FUNCTION invoices_statement_immutable();

CREATE OR REPLACE FUNCTION invoices_statement_lines_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parent_id uuid;
    issued boolean;
BEGIN
    IF TG_OP = 'INSERT' THEN
        parent_id := NEW.invoice_id;
    ELSE
        parent_id := OLD.invoice_id;
    END IF;
    SELECT kind = 'statement' AND status <> 'draft' INTO issued FROM invoices_invoice WHERE id = parent_id;
    IF issued IS NULL AND TG_OP = 'UPDATE' THEN
        SELECT kind = 'statement' AND status <> 'draft' INTO issued FROM invoices_invoice WHERE id = NEW.invoice_id;
    END IF;
    IF issued THEN
        RAISE EXCEPTION 'the lines of an issued statement are immutable: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS invoices_statement_lines_immutable ON invoices_invoiceline;
CREATE TRIGGER invoices_statement_lines_immutable
    BEFORE INSERT OR UPDATE OR DELETE ON invoices_invoiceline
    FOR EACH ROW EXECUTE FUNCTION invoices_statement_lines_immutable();
"""

REMOVE_SQL = """
DROP TRIGGER IF EXISTS invoices_statement_lines_immutable ON invoices_invoiceline;
DROP FUNCTION IF EXISTS invoices_statement_lines_immutable();
DROP TRIGGER IF EXISTS invoices_statement_immutable ON invoices_invoice;
DROP FUNCTION IF EXISTS invoices_statement_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_initial")]

    operations = [migrations.RunSQL(INSTALL_SQL, REMOVE_SQL)]
