-- Removes usage_events with every partition: dropping the parent drops the
-- attached ones, and the loop drops those that retention detached (kept as
-- plain tables named usage_events_pYYYYMMDD). All usage history is lost.
DROP TABLE usage_events;

DO $$
DECLARE
    detached regclass;
BEGIN
    FOR detached IN
        SELECT c.oid::regclass
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema()
          AND c.relkind = 'r'
          AND c.relname ~ '^usage_events_p[0-9]{8}$'
    LOOP
        EXECUTE format('DROP TABLE %s', detached);
    END LOOP;
END;
$$;
