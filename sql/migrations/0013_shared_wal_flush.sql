-- 0013_shared_wal_flush.sql - the writes of one pipeline share a WAL flush.
--
-- A worker sends the lead writes that arrive together as one pipeline on
-- one connection, each its own transaction.  PostgreSQL runs them one after
-- another, and with synchronous_commit on every COMMIT waits for its own
-- fsync of the WAL: k writes, k flushes in a row on one backend.  Now every
-- write but the last commits with synchronous_commit off (SET LOCAL), and
-- the last one ends with wal_flush_point() below.  Its COMMIT flushes the
-- WAL up to its own commit record, which comes after all the others', so
-- one flush makes the whole pipeline durable; the server answers none of
-- them before it has read that COMMIT (src/http/server.c, flush_batch).
--
-- Why a function: a COMMIT waits for the flush only when its transaction
-- has an XID and wrote WAL.  The last write may write nothing (a PATCH of a
-- lead that does not exist), and an XID alone (pg_current_xact_id()) is not
-- enough.  setval() on a logged sequence always writes a WAL record and
-- takes an XID so that its COMMIT is flushed (the sequence must stay
-- logged: test_database checks); it exists for this only, and its value
-- means nothing.  SECURITY DEFINER, so tekup_app gets no privilege on any
-- sequence; PL/pgSQL, so the call is planned once per connection.

CREATE SEQUENCE wal_flush_seq;
COMMENT ON SEQUENCE wal_flush_seq IS
    'set by wal_flush_point() to make a transaction write WAL; the value means nothing';

CREATE FUNCTION wal_flush_point() RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
BEGIN
    PERFORM setval('public.wal_flush_seq', 1, true);
END $$;
REVOKE ALL ON FUNCTION wal_flush_point() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wal_flush_point() TO tekup_app;
