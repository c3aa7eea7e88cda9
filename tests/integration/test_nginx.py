"""test_nginx.py - deploy/nginx.conf in front of the real server.

The shipped file is used as it is, with only what a deployment changes
substituted (each substitution must match exactly once, so an edit to the
file that moves these lines fails here, not in production): tekup's port
in the upstream, the listen addresses, and the certificate (a self-signed
one made for the test).  nginx runs from the Debian package, as its own
master process, with a minimal main file that includes ours in http {}.

What it holds the file to: it loads; HTTPS requests reach tekup and come
back unchanged; port 80 redirects to HTTPS; the client address tekup
counts sign-in failures against is the one nginx saw (with
--trusted-proxies 127.0.0.1, as tekup.service sets), not one the client
wrote into X-Forwarded-For; nginx answers an over-long body and a client
that never finishes its head itself, and nothing reaches tekup.
"""
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time

from harness import (new_org, owner, ADMIN_PASSWORD, Server, free_port, test,
                     wait_listening)

HERE = os.path.dirname(os.path.abspath(__file__))
CONF = os.path.join(HERE, "..", "..", "deploy", "nginx.conf")


def substitute(text, old, new):
    assert text.count(old) == 1, "deploy/nginx.conf no longer has exactly one %r" % old
    return text.replace(old, new)


class Nginx:
    """nginx with deploy/nginx.conf in front of the tekup on upstream_port."""

    def __init__(self, ctx, upstream_port):
        self.dir = os.path.join(ctx.workdir, "nginx")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "temp"))
        self.tls_port, self.plain_port = free_port(), free_port()
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=api.example.com", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        with open(CONF) as f:
            conf = f.read()
        conf = substitute(conf, "server 127.0.0.1:8080;", "server 127.0.0.1:%d;" % upstream_port)
        conf = substitute(conf, "listen 443 ssl http2;",
                          "listen 127.0.0.1:%d ssl http2;" % self.tls_port)
        conf = substitute(conf, "listen [::]:443 ssl http2;", "")
        conf = substitute(conf, "listen 80;", "listen 127.0.0.1:%d;" % self.plain_port)
        conf = substitute(conf, "listen [::]:80;", "")
        conf = substitute(conf, "/etc/ssl/tekup/fullchain.pem", cert)
        conf = substitute(conf, "/etc/ssl/tekup/privkey.pem", key)
        site = os.path.join(self.dir, "tekup.conf")
        with open(site, "w") as f:
            f.write(conf)
        temp = os.path.join(self.dir, "temp")
        self.error_log = os.path.join(self.dir, "error.log")
        main = os.path.join(self.dir, "nginx.conf")
        with open(main, "w") as f:
            f.write("worker_processes 1;\npid %s/nginx.pid;\nerror_log %s info;\n"
                    "events { worker_connections 256; }\n"
                    "http {\n  access_log off;\n"
                    "  client_body_temp_path %s/body;\n  proxy_temp_path %s/proxy;\n"
                    "  fastcgi_temp_path %s/f;\n  uwsgi_temp_path %s/u;\n  scgi_temp_path %s/s;\n"
                    "  include %s;\n}\n"
                    % (self.dir, self.error_log, temp, temp, temp, temp, temp, site))
        check = subprocess.run(["nginx", "-t", "-c", main, "-p", self.dir],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(["nginx", "-c", main, "-p", self.dir,
                                      "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_listening(self.tls_port, 10, lambda: self.proc.poll() is None):
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            raise AssertionError("nginx did not start listening")

    def https(self, method, path, key=None, body=None, headers=None, source="127.0.0.1",
              timeout=10):
        """One request over TLS from the given local address."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", self.tls_port, timeout=timeout,
                                           context=ctx, source_address=(source, 0))
        h = dict(headers or {})
        if key:
            h["X-Tenant-Key"] = key
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read()
        finally:
            conn.close()

    def raw_tls(self, data, timeout):
        """Sends data over TLS and returns what comes back until nginx
        closes the connection (or timeout passes)."""
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        sock = tls.wrap_socket(socket.create_connection(("127.0.0.1", self.tls_port)))
        sock.settimeout(timeout)
        got = b""
        try:
            sock.sendall(data)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (ConnectionResetError, ssl.SSLError, socket.timeout):
            pass
        finally:
            sock.close()
        return got

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def requests_logged(srv):
    return [json.loads(line) for line in srv.output().splitlines() if '"msg":"request"' in line]


@test
def deploy_nginx_conf_proxies_tls_to_tekup_and_answers_abuse_itself(ctx):
    if shutil.which("nginx") is None:
        raise AssertionError("nginx is not installed (scripts/deps.sh test installs it)")
    org = new_org(ctx, "Behind nginx")
    srv = Server(ctx, ["--trusted-proxies", "127.0.0.1"])
    proxy = None
    try:
        proxy = Nginx(ctx, srv.port)

        # Through TLS, the same answer as from tekup directly.
        st, headers, body = proxy.https("GET", "/v1/leads?limit=5", key=org.key)
        direct = ctx.http("GET", "/v1/leads?limit=5", key=org.key, port=srv.port)
        assert st == 200 and direct.status == 200, (st, body)
        assert json.loads(body) == direct.json
        assert headers.get("strict-transport-security") == "max-age=63072000", headers
        st, _, body = proxy.https("POST", "/v1/leads", key=org.key, body={"name": "Via nginx"})
        assert st == 201, body
        st, _, body = proxy.https("POST", "/v1/leads", key=org.key, body={"nope": 1})
        assert st == 400 and json.loads(body)["error"]["code"] == "unknown_field", body

        # Port 80 sends clients to HTTPS.
        plain = http.client.HTTPConnection("127.0.0.1", proxy.plain_port, timeout=5)
        plain.request("GET", "/v1/leads", headers={"Host": "api.example.com"})
        r = plain.getresponse()
        assert r.status == 301 and r.getheader("Location") == "https://api.example.com/v1/leads"
        plain.close()

        # Sign-in failures count against the address nginx saw (127.0.0.2),
        # whatever the client wrote into X-Forwarded-For; another address
        # behind the same nginx (127.0.0.3) is not affected.
        for i in range(20):
            st, _, body = proxy.https("POST", "/v1/auth/login", key=org.key,
                                      body={"email": "nobody-%d@example.com" % i,
                                            "password": "guess"},
                                      headers={"X-Forwarded-For": "198.51.100.%d" % i},
                                      source="127.0.0.2")
            assert st == 401, body
        sessions = owner(ctx, "SELECT count(*) FROM sessions WHERE user_id = %s",
                         (org.admin_id,))[0][0]
        st, headers, body = proxy.https("POST", "/v1/auth/login", key=org.key,
                                        body={"email": org.admin_email,
                                              "password": ADMIN_PASSWORD},
                                        headers={"X-Forwarded-For": "198.51.100.99"},
                                        source="127.0.0.2")
        assert st == 429 and json.loads(body)["error"]["code"] == "too_many_attempts", body
        assert 1 <= int(headers["retry-after"]) <= 15 * 60, headers
        assert owner(ctx, "SELECT count(*) FROM sessions WHERE user_id = %s",
                     (org.admin_id,))[0][0] == sessions
        st, _, body = proxy.https("POST", "/v1/auth/login", key=org.key,
                                  body={"email": org.admin_email, "password": ADMIN_PASSWORD},
                                  source="127.0.0.3")
        assert st == 201, body

        # nginx refuses a body over 1 MiB itself: tekup never sees it, and
        # nothing is written.
        before = ctx.count_leads(org.id)
        logged = len(requests_logged(srv))
        head = proxy.raw_tls(("POST /v1/leads HTTP/1.1\r\nHost: api.example.com\r\n"
                              "X-Tenant-Key: %s\r\nContent-Type: application/json\r\n"
                              "Content-Length: %d\r\n\r\n{\"name\": \"x\""
                              % (org.key, 1024 * 1024 + 1)).encode(), timeout=10)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
        assert ctx.count_leads(org.id) == before
        assert len(requests_logged(srv)) == logged

        # A client that never finishes its head is cut off after
        # client_header_timeout (10 s), without reaching tekup.
        t0 = time.time()
        got = proxy.raw_tls(b"GET /v1/leads HTTP/1.1\r\nHost: api.example.com\r\nX-Slow: ",
                            timeout=20)
        took = time.time() - t0
        assert 9 <= took <= 15, took
        assert got == b"" or got.startswith(b"HTTP/1.1 408"), got[:100]
        assert len(requests_logged(srv)) == logged
    finally:
        if proxy:
            proxy.stop()
        rc = srv.stop()
    assert rc == 0, srv.output()[-3000:]
    if proxy:
        with open(proxy.error_log) as f:
            errors = [line for line in f if re.search(r"\[(emerg|alert|crit)\]", line)]
        assert not errors, errors
