# shellcheck shell=bash
# rest:https:// repositories: `rclone serve restic` over TLS on 127.0.0.1:2381, with a
# self-signed CA (the `[repository] cacert` of the tests) and a server certificate for
# IP 127.0.0.1 signed by it, and the same htpasswd as the plain REST server. A second CA
# that signed nothing is the "wrong cacert" of the fault test. Sourced by
# setup-test-env.sh after the REST block (REST_HTPASSWD, REST_DIR).
# shellcheck source=../lib/service.sh
source "$ROOT/scripts/lib/service.sh"
t=$(now_ms)
HTTPS_PORT=2381
TLS_DIR=/var/lib/omk-test/tls
mkdir -p "$TLS_DIR"; chmod 700 "$TLS_DIR"
tls_ca() { # tls_ca NAME SUBJECT: a self-signed CA key and certificate, made once
  [ -s "$TLS_DIR/$1.pem" ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "$2" \
    -keyout "$TLS_DIR/$1.key" -out "$TLS_DIR/$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    > "$OMK_LOG/tls.log" 2>&1 || { cat "$OMK_LOG/tls.log" >&2; die "openssl: CA $1 failed"; }
}
tls_ca ca "/CN=omk-test CA"
tls_ca wrong-ca "/CN=omk-test unrelated CA"
if [ ! -s "$TLS_DIR/server.pem" ] || ! openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" > /dev/null 2>&1; then
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$TLS_DIR/server.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" \
    > "$OMK_LOG/tls.log" 2>&1 || { cat "$OMK_LOG/tls.log" >&2; die "openssl: server key failed"; }
  openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" -CAcreateserial \
    -days 3650 -extfile "$TLS_DIR/server.ext" -out "$TLS_DIR/server.pem" \
    >> "$OMK_LOG/tls.log" 2>&1 || { cat "$OMK_LOG/tls.log" >&2; die "openssl: server certificate failed"; }
fi
chmod 600 "$TLS_DIR"/*.key
chmod 644 "$TLS_DIR"/*.pem
HTTPS_SIG="serve restic --addr 127.0.0.1:$HTTPS_PORT $REST_DIR $(sha256sum "$REST_HTPASSWD" "$TLS_DIR/server.pem" | sha256sum | cut -d' ' -f1)"
hs_state=$(ensure_service rclone-https /usr/bin/rclone "$HTTPS_PORT" "$HTTPS_SIG" \
  /usr/bin/rclone serve restic --addr "127.0.0.1:$HTTPS_PORT" --htpasswd "$REST_HTPASSWD" \
  --cert "$TLS_DIR/server.pem" --key "$TLS_DIR/server.key" "$REST_DIR")
got=$(curl -s --max-time 10 --cacert "$TLS_DIR/ca.pem" -o /dev/null -w "%{http_code}" "https://127.0.0.1:$HTTPS_PORT/" || true)
[ "$got" = 401 ] || die "REST server https://127.0.0.1:$HTTPS_PORT answered $got without credentials (with the test CA), expected 401"
ENV_EXTRA+=(
  "OMK_TEST_REST_HTTPS_ADDR=127.0.0.1:$HTTPS_PORT"
  "OMK_TEST_CACERT=$TLS_DIR/ca.pem"
  "OMK_TEST_WRONG_CACERT=$TLS_DIR/wrong-ca.pem"
)
step_done "REST server (https)" "$t" "rclone :$HTTPS_PORT $hs_state"
