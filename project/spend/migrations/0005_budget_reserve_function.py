"""The budget check and reservation as a PL/pgSQL function (see project.spend.budgets).

The statement itself is the one budget_reserve sent before; in a function PostgreSQL
keeps its plan for the session (a pooled connection's life), where the statement sent
with client-side binding was parsed and planned again on every call (~0.5 ms, more than
it took to run). Django's psycopg backend neither binds server-side nor prepares by
default, and psycopg drops its prepared statements on every ROLLBACK, so the function
is what keeps the plan.
"""

from django.db import migrations

# One round trip, as before: the statement's guarantees are the statement's (see the
# comment above budgets._reserve). `counted_sql` (a scalar query of the caller's code, its
# one parameter $1 = `counted_arg`) is run only when a hard limit applies, so teams
# without one never pay for it; its result n makes the amount
# round(amount + per_unit × least(n, cap), 6).
CREATE = """
CREATE OR REPLACE FUNCTION spend_budget_reserve(
    p_team bigint, p_connection bigint, p_key text, p_month date, p_expires timestamptz,
    p_amount numeric, p_per_unit numeric, p_cap bigint, p_counted_sql text, p_counted_arg bigint,
    OUT r_kept bigint, OUT r_applicable bigint, OUT r_delta numeric, OUT r_raised bigint[])
LANGUAGE plpgsql AS $function$
DECLARE
    v_counted bigint;
    v_amount numeric(14, 6);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM spend_budget WHERE team_id = p_team AND hard_limit
                   AND (connection_id IS NULL OR connection_id = p_connection)) THEN
        r_kept := 0; r_applicable := 0; r_raised := '{}';
        RETURN;
    END IF;
    IF p_counted_sql IS NULL THEN
        v_amount := p_amount;
    ELSE
        EXECUTE p_counted_sql INTO v_counted USING p_counted_arg;
        v_amount := round(p_amount + p_per_unit * least(coalesce(v_counted, 0), p_cap), 6);
    END IF;
    WITH applicable AS (
        SELECT connection_id, amount_usd FROM spend_budget
        WHERE team_id = p_team AND hard_limit AND (connection_id IS NULL OR connection_id = p_connection)),
    wanted AS (SELECT v_amount AS amount WHERE EXISTS (SELECT 1 FROM applicable)),
    previous AS (SELECT coalesce(sum(amount_usd), 0) AS amount FROM spend_spendreservation WHERE key = p_key),
    scopes AS (
        SELECT s.connection_id,
               (SELECT a.amount_usd FROM applicable a
                WHERE a.connection_id IS NOT DISTINCT FROM s.connection_id) AS limit_usd
        FROM (SELECT NULL::bigint AS connection_id UNION SELECT p_connection) s
        WHERE EXISTS (SELECT 1 FROM applicable)),
    raised AS (
        INSERT INTO spend_budgetmeter AS m (team_id, connection_id, month, spent_usd, reserved_usd)
        SELECT p_team, s.connection_id, p_month, 0, w.amount - p.amount FROM scopes s, wanted w, previous p
        ORDER BY s.connection_id NULLS FIRST
        ON CONFLICT (team_id, connection_id) DO UPDATE SET reserved_usd = m.reserved_usd + EXCLUDED.reserved_usd
        WHERE (CASE WHEN m.month = EXCLUDED.month THEN m.spent_usd ELSE 0 END) + m.reserved_usd
              - (SELECT amount FROM previous)
              < coalesce((SELECT s.limit_usd FROM scopes s WHERE s.connection_id IS NOT DISTINCT FROM m.connection_id),
                         'Infinity')
        RETURNING m.connection_id),
    kept AS (
        INSERT INTO spend_spendreservation (team_id, connection_id, key, amount_usd, expires_at)
        SELECT p_team, p_connection, p_key, w.amount, p_expires FROM wanted w
        WHERE (SELECT count(*) FROM raised) = (SELECT count(*) FROM scopes)
        ON CONFLICT (key) DO UPDATE SET amount_usd = EXCLUDED.amount_usd, expires_at = EXCLUDED.expires_at
        RETURNING 1)
    SELECT (SELECT count(*) FROM kept), (SELECT count(*) FROM applicable),
           (SELECT w.amount - p.amount FROM wanted w, previous p), ARRAY(SELECT connection_id FROM raised)
    INTO r_kept, r_applicable, r_delta, r_raised;
END
$function$
"""

DROP = """
DROP FUNCTION IF EXISTS spend_budget_reserve(bigint, bigint, text, date, timestamptz, numeric, numeric, bigint, text,
                                             bigint)
"""


class Migration(migrations.Migration):

    dependencies = [
        ('spend', '0004_trained_tokens'),
    ]

    operations = [
        migrations.RunSQL(sql=CREATE, reverse_sql=DROP),
    ]
