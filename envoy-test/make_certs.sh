#!/usr/bin/env bash
# make_certs.sh DIR: a throw-away test CA and a server certificate for immich.test, *.immich.test, localhost and
# 127.0.0.1, valid 30 days. Kept when present and valid for another day. Only openssl is needed.
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
if [[ -f ca.crt && -f server.crt && -f server.key ]] && openssl x509 -checkend 86400 -noout -in server.crt >/dev/null; then
  exit 0
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=secure-headers test CA" -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=immich.test" -keyout server.key -out server.csr 2>/dev/null
cat > server.ext <<'EXT'
subjectAltName = DNS:immich.test, DNS:*.immich.test, DNS:localhost, IP:127.0.0.1
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
EXT
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
  -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext ca.srl
# Envoy in the Docker image runs as a non-root user and must read the key.
chmod 644 server.key server.crt ca.crt
echo "test certificates in $dir (CA: $dir/ca.crt)"
