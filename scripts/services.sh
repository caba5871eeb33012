#!/usr/bin/env bash
# Makes sure the servers botserver needs answer: Redis and PostgreSQL always; test peers behind flags.
# Where a server already answers, nothing is done. Where it is missing on Debian/Ubuntu, it is installed with apt
# and started without systemd. Usage: scripts/services.sh [--test-peers LIST] [--browser] [--mail] [--security-tools]
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
  dovecot -c "$dir/dovecot.conf" || { say "Dovecot did not start (see $dir/dovecot.log)"; return 1; }
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
