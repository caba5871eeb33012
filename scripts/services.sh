#!/usr/bin/env bash
# Makes sure the servers botserver needs answer: Redis and PostgreSQL always; test peers behind flags.
# Where a server already answers, nothing is done. Where it is missing on Debian/Ubuntu, it is installed with apt
# and started without systemd. Usage: scripts/services.sh [--test-peers LIST] [--browser] [--mail] [--security-tools] [--s3]
set -euo pipefail

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/botserver}"
STATE_DIR="${BOTSERVER_SERVICES_DIR:-${TMPDIR:-/tmp}/botserver-services}"
mkdir -p "$STATE_DIR"

say() { echo "services: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else say "need root for: $*"; return 1; fi; }

# host and port of a URL like scheme://user@host:port/db
url_host() { local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"; echo "${rest%%:*}"; }
url_port() { local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"; [[ "$rest" == *:* ]] && echo "${rest##*:}" || echo "$2"; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_port() { local i; for i in $(seq 1 "${3:-100}"); do port_open "$1" "$2" && return 0; sleep 0.2; done; return 1; }
is_local() { [[ "$1" == 127.* || "$1" == localhost || "$1" == "::1" ]]; }

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || { say "apt-get not found: install $* yourself"; return 1; }
  if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  say "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_redis() {
  local host port; host=$(url_host "$REDIS_URL"); port=$(url_port "$REDIS_URL" 6379)
  port_open "$host" "$port" && return 0
  is_local "$host" || { say "Redis at $host:$port does not answer"; return 1; }
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting Redis on $host:$port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --pidfile "$STATE_DIR/redis.pid" --logfile "$STATE_DIR/redis.log" --dir "$STATE_DIR"
  wait_port "$host" "$port" || { say "Redis did not start (see $STATE_DIR/redis.log)"; return 1; }
}

ensure_postgres() {
  local host port; host=$(url_host "$DATABASE_URL"); port=$(url_port "$DATABASE_URL" 5432)
  port_open "$host" "$port" && return 0
  is_local "$host" || { say "PostgreSQL at $host:$port does not answer"; return 1; }
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local version; version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    as_root pg_createcluster "$version" main -p "$port" >/dev/null
  fi
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "botserver: local trust" "$hba"; then
    # A development machine: local connections are trusted, as on the project's CI machines.
    as_root sh -c "printf '# botserver: local trust\nlocal all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' | cat - '$hba' > '$hba.new' && mv '$hba.new' '$hba' && chown postgres:postgres '$hba'"
  fi
  say "starting PostgreSQL $version on $host:$port"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port "$host" "$port" || { say "PostgreSQL did not start"; return 1; }
}

# --browser: Debian's Chromium at /usr/bin/chromium for the browser tests (test/e2e). A failed install only warns:
# those tests then skip on a developer machine and fail in CI (CI set), where a missing browser is a broken setup.
WANT_BROWSER=0
for arg in "$@"; do if [ "$arg" = "--browser" ]; then WANT_BROWSER=1; fi; done
ensure_browser() {
  [ -x /usr/bin/chromium ] && return 0
  apt_install chromium || return 1
  [ -x /usr/bin/chromium ] || { say "chromium is installed but /usr/bin/chromium is missing"; return 1; }
}

# --mail: a private Dovecot (IMAP on 127.0.0.1:${BOTSERVER_TEST_IMAP_PORT:-1143}, LMTP on ${BOTSERVER_TEST_LMTP_PORT:-2424}) for the
# e-mail tests: passwd-file users (test/helpers/mail.ts adds them), maildirs under $STATE_DIR/mail. Stop it with
# `dovecot -c $STATE_DIR/dovecot/dovecot.conf stop`.
WANT_MAIL=0
for arg in "$@"; do if [ "$arg" = "--mail" ]; then WANT_MAIL=1; fi; done
ensure_mail() {
  local imap_port="${BOTSERVER_TEST_IMAP_PORT:-1143}" lmtp_port="${BOTSERVER_TEST_LMTP_PORT:-2424}"
  local dir="$STATE_DIR/dovecot" mail="$STATE_DIR/mail"
  if port_open 127.0.0.1 "$imap_port" && port_open 127.0.0.1 "$lmtp_port"; then return 0; fi
  command -v dovecot >/dev/null || apt_install dovecot-imapd dovecot-lmtpd || return 1
  mkdir -p "$dir/base" "$dir/state" "$mail"
  touch "$dir/users"
  chmod 0644 "$dir/users"
  chown 5000:5000 "$mail" 2>/dev/null || true
  cat > "$dir/dovecot.conf" <<CONF
protocols = imap lmtp
listen = 127.0.0.1
instance_name = botserver-test
base_dir = $dir/base
state_dir = $dir/state
log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$mail/%d/%n/Maildir
first_valid_uid = 5000
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT username_format=%u $dir/users
}
userdb {
  driver = static
  args = uid=5000 gid=5000 home=$mail/%d/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lmtp_port
  }
}
protocol lmtp {
  postmaster_address = postmaster@example.test
}
CONF
  say "starting Dovecot (IMAP 127.0.0.1:$imap_port, LMTP 127.0.0.1:$lmtp_port)"
  dovecot -c "$dir/dovecot.conf" </dev/null >>"$dir/dovecot.log" 2>&1 || { say "Dovecot did not start (see $dir/dovecot.log)"; return 1; }
  wait_port 127.0.0.1 "$imap_port" && wait_port 127.0.0.1 "$lmtp_port" || { say "Dovecot does not answer (see $dir/dovecot.log)"; return 1; }
}

# --security-tools: openssl (test certificates) and Debian's sqlmap (scripts/sqlmap-check.sh). A failed install only
# warns: the sqlmap test then skips on a developer machine and fails in CI (CI set).
WANT_SECURITY_TOOLS=0
for arg in "$@"; do if [ "$arg" = "--security-tools" ]; then WANT_SECURITY_TOOLS=1; fi; done
ensure_security_tools() {
  command -v openssl >/dev/null || apt_install openssl || return 1
  command -v sqlmap >/dev/null || apt_install sqlmap || return 1
}

# --s3: a private OpenStack Swift with its s3api middleware, the S3-compatible peer of the storage tests: proxy on
# 127.0.0.1:${BOTSERVER_TEST_S3_PORT:-9010} (access key test:tester, secret testing; bucket versioning and encryption
# at rest on), account/container/object servers on the next three ports, memcached on the fourth, one replica on one
# device, everything under $STATE_DIR/swift (confs, rings, data, logs, *.pid). Stop it with
# `kill $(cat $STATE_DIR/swift/*.pid)`.
WANT_S3=0
for arg in "$@"; do if [ "$arg" = "--s3" ]; then WANT_S3=1; fi; done
swift_healthy() {
  local reply
  reply=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET /healthcheck HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && cat <&3' sh "$1" 2>/dev/null) || return 1
  [[ "$reply" == "HTTP/1.1 200 "* && "$reply" == *$'\r\n\r\nOK' ]]
}
# Starts "$@" detached in its own session, logging to $2.log, and records its pid in $2.pid ($1: the swift dir).
swift_spawn() {
  local dir="$1" name="$2"; shift 2
  local old; old=$(cat "$dir/$name.pid" 2>/dev/null || true)
  # A recorded process that is still there but does not answer is ended first (only if it is still that program).
  if [ -n "$old" ] && grep -qaF -- "$1" "/proc/$old/cmdline" 2>/dev/null; then kill "$old" 2>/dev/null || true; sleep 0.3; fi
  PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}" setsid sh -c 'echo $$ > "$1"; shift; exec "$@"' sh "$dir/$name.pid" "$@" \
    >>"$dir/$name.log" 2>&1 </dev/null &
}
ensure_s3() {
  local port="${BOTSERVER_TEST_S3_PORT:-9010}" dir="$STATE_DIR/swift"
  local account_port=$((port + 1)) container_port=$((port + 2)) object_port=$((port + 3)) memcached_port=$((port + 4))
  swift_up() {
    swift_healthy "$port" && port_open 127.0.0.1 "$account_port" && port_open 127.0.0.1 "$container_port" \
      && port_open 127.0.0.1 "$object_port" && port_open 127.0.0.1 "$memcached_port"
  }
  swift_up && return 0
  if [ ! -x /usr/bin/swift-proxy-server ] || [ ! -x /usr/bin/swift-object-server ] || ! command -v memcached >/dev/null; then
    apt_install swift-proxy swift-account swift-container swift-object memcached || return 1
  fi
  if [ ! -f /etc/swift/swift.conf ]; then
    # Every Swift server reads its hash prefix/suffix from this fixed path (the Debian package creates it).
    as_root sh -c 'mkdir -p /etc/swift && printf "[swift-hash]\nswift_hash_path_suffix = botserver-test\n\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n" > /etc/swift/swift.conf' || return 1
  fi
  mkdir -p "$dir/etc" "$dir/srv/d1"
  chmod 0700 "$dir"
  local user; user=$(id -un)
  if [ ! -s "$dir/encryption_root_secret" ]; then
    (umask 077; head -c 32 /dev/urandom | base64 -w 0 > "$dir/encryption_root_secret")
  fi
  # Swift 2.30 waits for a body on a request with neither Content-Length nor Transfer-Encoding (the AWS SDK's
  # DeleteObject sends neither: each delete hung ~60 s). This filter, first in the proxy pipeline, says "no body".
  cat > "$dir/botserver_swift_nobody.py" <<'PYTHON'
import io


def filter_factory(global_conf, **local_conf):
    def wrap(app):
        def no_body(environ, start_response):
            if not environ.get('CONTENT_LENGTH') and 'HTTP_TRANSFER_ENCODING' not in environ:
                environ['CONTENT_LENGTH'] = '0'
                environ['wsgi.input'] = io.BytesIO(b'')
            return app(environ, start_response)
        return no_body
    return wrap
PYTHON
  local common="[DEFAULT]
bind_ip = 127.0.0.1
workers = 0
user = $user
swift_dir = $dir/etc
devices = $dir/srv
mount_check = false
log_level = WARNING
log_udp_host = 127.0.0.1
log_udp_port = 9
"
  local kind kport rings=()
  for kind in account container object; do
    case "$kind" in account) kport=$account_port ;; container) kport=$container_port ;; object) kport=$object_port ;; esac
    printf '%sbind_port = %s\n\n[pipeline:main]\npipeline = %s-server\n\n[app:%s-server]\nuse = egg:swift#%s\n\n[%s-replicator]\n\n[%s-auditor]\n\n[%s-updater]\n' \
      "$common" "$kport" "$kind" "$kind" "$kind" "$kind" "$kind" "$kind" > "$dir/etc/$kind-server.conf"
    # Rings name the ports: rebuilt only when missing or when the ports changed.
    if [ ! -f "$dir/etc/$kind.ring.gz" ] || [ "$(cat "$dir/etc/$kind.ring.port" 2>/dev/null)" != "$kport" ]; then
      rm -f "$dir/etc/$kind.builder" "$dir/etc/$kind.ring.gz" "$dir/etc/$kind.ring.port"
      rings+=("$kind:$kport")
    fi
  done
  say "starting Swift (S3 on 127.0.0.1:$port; account/container/object $account_port/$container_port/$object_port, memcached $memcached_port)"
  # memcached and the storage servers need no ring to start: they start while the rings are built.
  port_open 127.0.0.1 "$memcached_port" || swift_spawn "$dir" memcached memcached -l 127.0.0.1 -p "$memcached_port" -U 0 -m 64 $([ "$(id -u)" -eq 0 ] && echo "-u root")
  port_open 127.0.0.1 "$account_port" || swift_spawn "$dir" account /usr/bin/swift-account-server "$dir/etc/account-server.conf"
  port_open 127.0.0.1 "$container_port" || swift_spawn "$dir" container /usr/bin/swift-container-server "$dir/etc/container-server.conf"
  port_open 127.0.0.1 "$object_port" || swift_spawn "$dir" object /usr/bin/swift-object-server "$dir/etc/object-server.conf"
  if [ "${#rings[@]}" -gt 0 ]; then
    # What `swift-ring-builder X.builder create 10 1 1`, `add r1z1-127.0.0.1:PORT/d1 100` and `rebalance` do, for
    # the three rings in one Python process (~1 s instead of ~8 s of nine interpreter starts on two cores).
    /usr/bin/python3 - "$dir/etc" "${rings[@]}" <<'PYTHON' || { say "building the Swift rings failed (under $dir/etc)"; return 1; }
import sys
from swift.common.ring import RingBuilder

swift_dir = sys.argv[1]
for spec in sys.argv[2:]:
    kind, port = spec.split(':')
    builder = RingBuilder(10, 1, 1)
    builder.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port), 'replication_ip': '127.0.0.1',
                     'replication_port': int(port), 'device': 'd1', 'weight': 100, 'meta': ''})
    builder.rebalance()
    builder.get_ring().save('%s/%s.ring.gz' % (swift_dir, kind))
    builder.save('%s/%s.builder' % (swift_dir, kind))
    with open('%s/%s.ring.port' % (swift_dir, kind), 'w') as stamp:
        stamp.write(port + '\n')
PYTHON
  fi
  cat > "$dir/etc/proxy-server.conf" <<CONF
${common}bind_port = $port

[pipeline:main]
pipeline = nobody catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes symlink keymaster encryption proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:nobody]
paste.filter_factory = botserver_swift_nobody:filter_factory

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$memcached_port

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_object_versioning = true

[filter:symlink]
use = egg:swift#symlink

[filter:keymaster]
use = egg:swift#keymaster
encryption_root_secret = $(cat "$dir/encryption_root_secret")

[filter:encryption]
use = egg:swift#encryption
CONF
  chmod 0600 "$dir/etc/proxy-server.conf"
  port_open 127.0.0.1 "$port" || swift_spawn "$dir" proxy /usr/bin/swift-proxy-server "$dir/etc/proxy-server.conf"
  local i
  for i in $(seq 1 100); do swift_up && return 0; sleep 0.2; done
  say "Swift does not answer on 127.0.0.1:$port (see $dir/*.log)"
  return 1
}

ensure_redis
ensure_postgres
say "Redis and PostgreSQL answer"
if [ "$WANT_BROWSER" -eq 1 ]; then
  if ensure_browser; then say "Chromium: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"; else say "Chromium could not be installed: browser tests will be skipped (or fail in CI)"; fi
fi
if [ "$WANT_MAIL" -eq 1 ]; then ensure_mail || { say "Dovecot could not be started"; exit 1; }; say "Dovecot answers"; fi
if [ "$WANT_SECURITY_TOOLS" -eq 1 ]; then
  if ensure_security_tools; then say "openssl and sqlmap: present"; else say "openssl or sqlmap could not be installed: the sqlmap test will be skipped (or fail in CI)"; fi
fi
if [ "$WANT_S3" -eq 1 ]; then ensure_s3 || { say "Swift (S3) could not be started"; exit 1; }; say "Swift (S3) answers on 127.0.0.1:${BOTSERVER_TEST_S3_PORT:-9010}"; fi
