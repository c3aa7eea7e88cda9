"""test_hardening.py - connection-level limits: a slow client cannot hold a
worker, idle connections are closed after the inactivity timeout, and the
total and per-IP connection limits hold, and connections are spread over
the workers so that a blocked request holds up only its own worker's
clients.  Each test runs its own server.
"""
import http.client
import json
import socket
import threading
import time

from harness import Server, test


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def closed_by_server(sock, within):
    """True when the server closes sock (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@test
def slow_client_does_not_hold_the_only_worker_and_is_timed_out(ctx):
    t = ctx.new_tenant()
    srv = Server(ctx, ["--threads", "1", "--connection-timeout-s", "2"])
    try:
        slow = connect(srv.port)
        slow.sendall(b"GET /v1/le")  # and then nothing: a slowloris
        time.sleep(0.2)
        t0 = time.time()
        r = ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port)
        assert r.status == 200, r
        assert time.time() - t0 < 1.5, "a slow client delayed another request"
        assert closed_by_server(slow, 5), "idle partial request was not timed out"
        slow.close()
    finally:
        assert srv.stop() == 0


def trickle(sock, data, interval, stop):
    """Sends data a byte at a time, `interval` apart, until done, the socket
    fails or stop is set; returns how many bytes went."""
    sent = 0
    for i in range(len(data)):
        if stop.is_set():
            break
        try:
            sock.sendall(data[i:i + 1])
        except OSError:
            break
        sent += 1
        time.sleep(interval)
    return sent


@test
def a_client_that_trickles_its_request_is_cut_off_at_the_request_deadline(ctx):
    """The inactivity timeout never fires for a client that sends a byte every
    half second; --request-timeout-s does, for the head and for the body,
    and the trickled write is not made."""
    t = ctx.new_tenant()
    before = ctx.count_leads(t.id)
    srv = Server(ctx, ["--threads", "1", "--connection-timeout-s", "2",
                       "--request-timeout-s", "3"])
    try:
        body = b'{"name":"trickled"}'
        head = (b"POST /v1/leads HTTP/1.1\r\nHost: x\r\nX-Tenant-Key: " + t.key.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % len(body))
        for label, first, rest in (("head", b"", head + body), ("body", head, body)):
            sock = connect(srv.port)
            sock.sendall(first)
            stop = threading.Event()
            out = []
            th = threading.Thread(target=lambda: out.append(trickle(sock, rest, 0.5, stop)))
            t0 = time.time()
            th.start()
            try:
                assert closed_by_server(sock, 8), "a trickled %s was not cut off" % label
                took = time.time() - t0
                assert 2.5 < took < 6, (label, took)
            finally:
                stop.set()
                th.join(10)
                sock.close()
            assert out and out[0] < len(rest), (label, out)
        # A client that is merely idle between requests keeps its connection
        # until the inactivity timeout, and one that sends promptly is served.
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        for _ in range(3):
            conn.request("GET", "/v1/leads/stats", headers={"X-Tenant-Key": t.key})
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status
            time.sleep(1.2)
        conn.close()
    finally:
        assert srv.stop() == 0, srv.output()[-2000:]
    assert ctx.count_leads(t.id) == before
    out = srv.output()
    assert "sent no whole request within 3s" in out, out[-2000:]


@test
def per_ip_connection_limit_refuses_the_extra_connection(ctx):
    t = ctx.new_tenant()
    srv = Server(ctx, ["--max-connections-per-ip", "3"])
    try:
        time.sleep(0.5)  # let the server retire the harness's readiness probe
        held = [connect(srv.port) for _ in range(3)]
        time.sleep(0.2)
        extra = connect(srv.port)  # accepted by the kernel, closed by the server
        try:
            extra.sendall(b"GET /v1/leads/stats HTTP/1.1\r\nHost: x\r\nX-Tenant-Key: "
                          + t.key.encode() + b"\r\n\r\n")
        except OSError:
            pass
        assert closed_by_server(extra, 3)
        extra.close()
        for s in held:
            s.close()
        time.sleep(0.3)
        assert ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port).status == 200
    finally:
        assert srv.stop() == 0


@test
def total_connection_limit_holds(ctx):
    """With --max-connections 2 a third connection is not served while two
    are open (libmicrohttpd stops accepting; the kernel backlog holds it)."""
    t = ctx.new_tenant()
    srv = Server(ctx, ["--threads", "1", "--max-connections", "2",
                       "--max-connections-per-ip", "0"])
    time.sleep(0.5)  # let the server retire the harness's readiness probe
    request = (b"GET /v1/leads/stats HTTP/1.1\r\nHost: x\r\nX-Tenant-Key: " + t.key.encode()
               + b"\r\nConnection: close\r\n\r\n")
    try:
        held = [connect(srv.port) for _ in range(2)]
        time.sleep(0.2)
        extra = connect(srv.port)
        extra.sendall(request)
        extra.settimeout(1.0)
        try:
            early = extra.recv(1024)
        except socket.timeout:
            early = None
        assert not early, "a connection beyond the limit was served: %r" % early
        for s in held:
            s.close()
        time.sleep(0.3)
        if early is None:  # still queued: served once capacity frees up
            extra.settimeout(5)
            assert extra.recv(1024).startswith(b"HTTP/1.1 200"), "queued connection not served"
        extra.close()
        assert ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port).status == 200
    finally:
        assert srv.stop() == 0


@test
def connection_the_server_times_out_frees_its_place_under_the_limits(ctx):
    """--max-connections 1 and --max-connections-per-ip 1: an idle connection
    the server closes after the inactivity timeout no longer counts, so the
    next client is served (the slot is released on every kind of close)."""
    t = ctx.new_tenant()
    srv = Server(ctx, ["--threads", "2", "--max-connections", "1",
                       "--max-connections-per-ip", "1", "--connection-timeout-s", "1"])
    try:
        time.sleep(0.5)  # let the server retire the harness's readiness probe
        idle = connect(srv.port)
        assert closed_by_server(idle, 5), "idle connection was not timed out"
        idle.close()
        for _ in range(3):
            r = ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port, timeout=5)
            assert r.status == 200, r
            time.sleep(0.2)  # the server counts the closed connection out
    finally:
        assert srv.stop() == 0


@test
def connections_spread_over_workers_so_a_blocked_request_stalls_no_other(ctx):
    """Four connections to four workers land on four different workers: while
    one worker waits on a row lock, requests on the other three connections
    are served at once.  (libmicrohttpd's own accept let whichever worker woke
    first take several connections in a row.)"""
    t = ctx.new_tenant()
    locked = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "locked"}).json
    free = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "free"}).json
    srv = Server(ctx, ["--threads", "4", "--pool-size", "4", "--statement-timeout-ms", "20000"])
    hold = ctx.owner_db()
    try:
        # Resolve the key, then let the server retire this and the readiness
        # probe's connections.
        assert ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port).status == 200
        time.sleep(0.5)
        conns = [http.client.HTTPConnection("127.0.0.1", srv.port, timeout=15) for _ in range(4)]
        for c in conns:
            c.connect()
        time.sleep(0.2)
        hold.autocommit = False
        hold.cursor().execute("SELECT id FROM leads WHERE id = %s FOR UPDATE", (locked["id"],))
        hdrs = {"X-Tenant-Key": t.key, "Content-Type": "application/json"}
        blocked = {}

        def patch_locked():
            conns[0].request("PATCH", "/v1/leads/" + locked["id"],
                             body=json.dumps({"status": "CONTACTED"}), headers=hdrs)
            r = conns[0].getresponse()
            blocked["status"] = r.status
            r.read()

        blocker = threading.Thread(target=patch_locked)
        blocker.start()
        time.sleep(0.5)
        assert blocker.is_alive(), "the PATCH of the locked lead did not wait: %r" % blocked
        for c in conns[1:]:
            t0 = time.time()
            c.request("GET", "/v1/leads/" + free["id"], headers=hdrs)
            r = c.getresponse()
            body = json.loads(r.read())
            waited = time.time() - t0
            assert r.status == 200 and body["id"] == free["id"], (r.status, body)
            assert waited < 3, "a request waited %.1f s behind the blocked one" % waited
        assert blocker.is_alive(), "the lock was released early; the test proves nothing"
        hold.rollback()
        blocker.join(15)
        assert blocked.get("status") == 200, blocked
        for c in conns:
            c.close()
    finally:
        hold.close()
        assert srv.stop() == 0
