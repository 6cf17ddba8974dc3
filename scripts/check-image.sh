#!/usr/bin/env bash
# Verify the container image definition (Dockerfile) as far as this machine
# allows; run by `make image-check`.
#
#   (a) the runtime stage's RUNTIME_LIBS is exactly the set of Debian packages
#       providing the libraries `ldd $SM_BIN` resolves to (nothing missing,
#       nothing unused), and the build stage installs exactly the build
#       packages of scripts/deps.sh (less the test tools);
#   (b) the image's entrypoint works as its non-root user: a scratch directory
#       is laid out as the runtime stage's COPY lines say, the entrypoint runs
#       as the USER uid/gid (setpriv, when this script runs as root) with the
#       image's ENV only, and the script waits for the "listening" log line,
#       checks /health, /demo/, /demo/sdk/ and /metrics, runs the Dockerfile's
#       own HEALTHCHECK command (and checks that it fails against a port that
#       does not answer 200), sends SIGTERM and expects exit status 0;
#   (c) `docker build` (and a short run of the image) only when `docker info`
#       answers; otherwise it says plainly that the image was not built;
#   (d) opt-in (SM_CHECK_ROOTFS=1, `make image-check-rootfs`): both stages
#       carried out in debootstrap'd Debian 12 chroots, RUN line by RUN line,
#       and the resulting root exercised like (b).
#
# Image paths become paths under the scratch directory: every ENV value and
# entrypoint argument that starts with "/" is prefixed with it.  Ports are
# set to 0 (free ports, read back from the "listening" line) so that the check
# never collides with a running server.
#
# Environment: SM_BIN (default build/signal-manager), SM_DOCKERFILE (default
# Dockerfile), IMAGE_NAME / IMAGE_TAG (for (c)), SM_CHECK_DOCKER=0 skips (c),
# SM_CHECK_ROOTFS=1 runs (d) (SM_ROOTFS_DIR caches the Debian base root,
# SM_DEBIAN_MIRROR, SM_KEEP_ROOTFS=1 keeps the roots).
# Exit status: 0 when every check that could run passed, 1 otherwise.
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."

BIN=${SM_BIN:-build/signal-manager}
DOCKERFILE=${SM_DOCKERFILE:-Dockerfile}
IMAGE="${IMAGE_NAME:-signal-manager}:${IMAGE_TAG:-$(cat VERSION 2>/dev/null || echo dev)}"
START_TIMEOUT_S=15
STOP_TIMEOUT_S=30
# Test tools in scripts/deps.sh that the image does not need.
DEPS_NOT_IN_IMAGE="libcmocka-dev nodejs npm"

passed=0
failed=0
skipped=0
say() { printf 'check-image: %s\n' "$*"; }
ok() { printf 'check-image: ok   %s\n' "$*"; passed=$((passed + 1)); }
bad() { printf 'check-image: FAIL %s\n' "$*" >&2; failed=$((failed + 1)); }
skip() { printf 'check-image: SKIP %s\n' "$*"; skipped=$((skipped + 1)); }
die() { printf 'check-image: %s\n' "$*" >&2; exit 1; }

[ -f "$DOCKERFILE" ] || die "$DOCKERFILE not found"
[ -x "$BIN" ] || die "$BIN not found: build it first (make image-check does)"
command -v node >/dev/null 2>&1 || die "node is needed to read the Dockerfile's JSON arrays"

# ---- reading the Dockerfile ---------------------------------------------------

# Continuation lines joined, comments and blank lines dropped.
DF=$(sed -e ':a' -e '/\\$/{N;s/\\\n//;ta}' "$DOCKERFILE" | grep -v -E '^[[:space:]]*(#|$)')
# Stage n (1-based) and the last stage.
stage() { awk -v want="$1" 'toupper($1) == "FROM" { n++ } n == want' <<<"$DF"; }
nstages=$(awk 'toupper($1) == "FROM" { n++ } END { print n + 0 }' <<<"$DF")
[ "$nstages" -ge 2 ] || die "$DOCKERFILE: expected a multi-stage build, found $nstages stage(s)"
BUILD_STAGE=$(stage 1)
RUNTIME=$(stage "$nstages")
# Arguments of every instruction $2 in stage text $1, one per line.
instr() {
    awk -v i="$2" 'toupper($1) == i { sub(/^[[:space:]]*[^[:space:]]+[[:space:]]+/, ""); print }' \
        <<<"$1"
}
# A JSON array (the exec form) as NUL-separated words.
json_words() {
    node -e 'const a = JSON.parse(process.argv[1]);
             if (!Array.isArray(a)) process.exit(1);
             for (const w of a) process.stdout.write(String(w) + "\0");' "$1"
}

# ---- (a) libraries and packages -------------------------------------------------

say "(a) runtime libraries of $BIN against the runtime stage of $DOCKERFILE"
# shellcheck disable=SC1091
os=$(. /etc/os-release 2>/dev/null && echo "$ID $VERSION_ID $PRETTY_NAME") || os=unknown
case "$os" in
"debian 12 "*) ;;
*) say "warning: this machine is ${os#* * }, the image is Debian 12: package names may differ" ;;
esac

runtime_libs=$(instr "$RUNTIME" ARG | sed -n 's/^RUNTIME_LIBS="\(.*\)"$/\1/p')
if [ -z "$runtime_libs" ]; then
    bad 'the runtime stage has no ARG RUNTIME_LIBS="..."'
elif ! instr "$RUNTIME" RUN | grep -q -E 'apt-get install .*\$\{?RUNTIME_LIBS\}?'; then
    # shellcheck disable=SC2016
    bad 'the runtime stage does not apt-get install $RUNTIME_LIBS'
fi
listed=$(tr -s ' \t' '\n' <<<"$runtime_libs" | sed '/^$/d' | sort -u)

# Package owning a library path; /lib and /usr/lib are the same directory on a
# merged-/usr system, but dpkg knows each file under one of the two names.
pkg_of() {
    local c alt out
    for c in "$1" "$(readlink -f "$1")"; do
        for alt in "$c" "${c#/usr}" "/usr$c"; do
            out=$(dpkg -S "$alt" 2>/dev/null | grep -v '^diversion' | head -n 1) || true
            if [ -n "$out" ]; then
                echo "${out%%:*}"
                return 0
            fi
        done
    done
    return 1
}

direct=""
if command -v readelf >/dev/null 2>&1; then
    direct=$(readelf -d "$BIN" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
fi
needed_pkgs=""
table=""
ldd_ok=1
while read -r line; do
    [ -n "$line" ] || continue
    case "$line" in
    linux-vdso.so* | linux-gate.so*) continue ;;            # provided by the kernel
    *"not found"*) bad "ldd: $line"; ldd_ok=0; continue ;;
    *" => "*) so=${line%% =>*}; path=$(awk '{ print $3 }' <<<"$line") ;;
    /*) path=${line%% *}; so=$(basename "$path") ;;            # the dynamic loader
    *) bad "ldd: unexpected line: $line"; ldd_ok=0; continue ;;
    esac
    if ! pkg=$(pkg_of "$path"); then
        bad "no Debian package provides $path ($so)"
        ldd_ok=0
        continue
    fi
    how=indirect
    if grep -qxF "$so" <<<"$direct"; then how=direct; fi
    if [[ $line == /* ]]; then how=loader; fi
    table+=$(printf '  %-26s %-52s %-18s %s' "$so" "$path" "$pkg" "$how")$'\n'
    needed_pkgs+="$pkg"$'\n'
done < <(ldd "$BIN")
printf '%s' "$table"
needed=$(sed '/^$/d' <<<"$needed_pkgs" | sort -u)

missing=$(comm -23 <(printf '%s\n' "$needed") <(printf '%s\n' "$listed") | sed '/^$/d')
unused=$(comm -13 <(printf '%s\n' "$needed") <(printf '%s\n' "$listed") | sed '/^$/d')
if [ -n "$missing" ]; then
    bad "RUNTIME_LIBS lacks packages the binary loads: $(tr '\n' ' ' <<<"$missing")"
fi
if [ -n "$unused" ]; then
    bad "RUNTIME_LIBS lists packages the binary does not load: $(tr '\n' ' ' <<<"$unused")"
fi
if [ -z "$missing" ] && [ -z "$unused" ] && [ "$ldd_ok" = 1 ] && [ -n "$listed" ]; then
    ok "RUNTIME_LIBS = the $(wc -l <<<"$needed") packages behind ldd $BIN"
fi

say "(a) build packages of the build stage against scripts/deps.sh"
deps=$(sed -n '/^pkgs="/,/"$/p' scripts/deps.sh | sed -e 's/^pkgs="//' -e 's/"$//' |
       tr -s ' \t' '\n' | sed '/^$/d' | grep -v -x -F -f <(tr ' ' '\n' <<<"$DEPS_NOT_IN_IMAGE") |
       sort -u)
build_pkgs=$(instr "$BUILD_STAGE" RUN | grep 'apt-get install' |
             sed -e 's/.*apt-get install//' -e 's/&&.*//' | tr -s ' \t' '\n' |
             grep -v -E '^(-|$)' | sort -u)
if [ -z "$deps" ] || [ -z "$build_pkgs" ]; then
    bad "could not read the package lists" \
        "(scripts/deps.sh pkgs=, the build stage's apt-get install)"
elif [ "$deps" = "$build_pkgs" ]; then
    ok "build stage installs scripts/deps.sh build packages less ($DEPS_NOT_IN_IMAGE)"
else
    bad "build stage packages differ from scripts/deps.sh:" \
        "only in Dockerfile: $(comm -13 <(echo "$deps") <(echo "$build_pkgs") | tr '\n' ' ')" \
        "only in deps.sh: $(comm -23 <(echo "$deps") <(echo "$build_pkgs") | tr '\n' ' ')"
fi

# ---- running the server as the image would --------------------------------------

root=""
pid=""
mounts=()
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    local m
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    if [ -n "$root" ]; then rm -rf "$root"; fi
}
trap cleanup EXIT
root=$(mktemp -d "${TMPDIR:-/tmp}/sm-image-check.XXXXXX")
chmod 0755 "$root"

user=$(instr "$RUNTIME" USER | tail -n 1)
uid=${user%%:*}
gid=${user#*:}
[ "$gid" != "$user" ] || gid=$uid
if ! [[ $uid =~ ^[0-9]+$ && $gid =~ ^[0-9]+$ ]] || [ "$uid" -eq 0 ]; then
    bad "USER must be a numeric non-root uid:gid (Kubernetes runAsNonRoot checks it)," \
        "found \"$user\""
    uid=65534
    gid=65534
fi
volume=$(instr "$RUNTIME" VOLUME | tail -n 1 | tr -d '[]",' | awk '{ print $1 }')
workdir=$(instr "$RUNTIME" WORKDIR | tail -n 1)
workdir=${workdir:-/}
[ -n "$volume" ] || { bad "the runtime stage declares no VOLUME"; volume=/var/lib/signal-manager; }
# KEY=VALUE words of the runtime stage's ENV instructions, one per line.
image_env_words() {
    local words kv v
    while read -r -a words; do
        for kv in "${words[@]}"; do
            if [[ $kv != *=* ]]; then
                bad "ENV $kv: only the KEY=VALUE form is understood here"
                continue
            fi
            v=${kv#*=}
            v=${v#\"}
            v=${v%\"}
            printf '%s=%s\n' "${kv%%=*}" "$v"
        done
    done < <(instr "$RUNTIME" ENV)
}
mapfile -t IMAGE_ENV < <(image_env_words)
mapfile -d '' -t ENTRY < <(json_words "$(instr "$RUNTIME" ENTRYPOINT | tail -n 1)")
[ "${#ENTRY[@]}" -gt 0 ] || die "the runtime stage has no ENTRYPOINT in exec form"
hc_line=$(instr "$RUNTIME" HEALTHCHECK | tail -n 1)
hc_timeout=$(grep -o -- '--timeout=[0-9]*s' <<<"$hc_line" | grep -o '[0-9]*' || echo 30)
HC=()
[ -z "$hc_line" ] || mapfile -d '' -t HC < <(json_words "${hc_line#*CMD }")
[ "${#HC[@]}" -gt 0 ] || bad "no HEALTHCHECK ... CMD [exec form] in the runtime stage"

# One HTTP/1.1 GET over bash's /dev/tcp; prints the whole response.
http_get() {
    # shellcheck disable=SC2016
    timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" "$2" >&3
        cat <&3' _ "$1" "$2" 2>/dev/null || true
}
expect() { # port path status substring what
    local r
    r=$(http_get "$1" "$2" | tr -d '\r')
    if [[ $(head -n 1 <<<"$r") == "HTTP/1.1 $3 "* ]] && grep -qF "$4" <<<"$r"; then
        ok "$5"
    else
        bad "$5: GET $2 answered: $(head -n 1 <<<"$r")"
    fi
}

# exercise TAG VOLUME_DIR: start "${LAUNCH[@]}" (which must exec the server
# with ports 0), wait for "listening", probe it, run the HEALTHCHECK through
# run_hc PORT, SIGTERM it.  Returns 1 when it did not start.
exercise() {
    local tag=$1 voldir=$2 log=$root/server-$1.log started=0 stopped=0 rc=0
    "${LAUNCH[@]}" >"$root/server-$tag.out" 2>"$log" &
    pid=$!
    for _ in $(seq $((START_TIMEOUT_S * 10))); do
        if grep -q '"msg":"listening"' "$log" 2>/dev/null; then started=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$started" != 1 ]; then
        bad "$tag: the entrypoint did not log \"listening\" within ${START_TIMEOUT_S}s; its log:"
        sed 's/^/    /' "$log" >&2 || true
        return 1
    fi
    ok "$tag: entrypoint started and logged \"listening\""
    local line port mport host ids foreign
    line=$(grep -m1 '"msg":"listening"' "$log")
    port=$(grep -o '"port":[0-9]*' <<<"$line" | cut -d: -f2)
    mport=$(grep -o '"metrics_port":[0-9]*' <<<"$line" | cut -d: -f2)
    host=$(grep -o '"host":"[^"]*"' <<<"$line" | cut -d'"' -f4)
    if [ "$host" = 0.0.0.0 ]; then
        ok "$tag: listens on 0.0.0.0 (image ENV)"
    else
        bad "$tag: listens on \"$host\", expected 0.0.0.0"
    fi
    ids=$(awk '/^Uid:/ { u = $2 " " $3 " " $4 " " $5 } /^Gid:/ { g = $2 " " $3 " " $4 " " $5 }
               /^Groups:/ { gr = $2 } END { print u "|" g "|" gr }' "/proc/$pid/status")
    if [ "$ids" = "$uid $uid $uid $uid|$gid $gid $gid $gid|" ]; then
        ok "$tag: runs as uid $uid gid $gid, no supplementary groups"
    else
        bad "$tag: process credentials (uid|gid|groups) are \"$ids\", expected uid $uid gid $gid"
    fi
    expect "$port" /health 200 '"status":"healthy"' "$tag: GET /health: 200 healthy"
    expect "$port" /demo/ 200 'Content-Type: text/html' "$tag: GET /demo/: the demo page"
    expect "$port" /demo/sdk/signal-manager.js 200 'Content-Type: text/javascript' \
        "$tag: GET /demo/sdk/signal-manager.js: the SDK"
    expect "$mport" /metrics 200 'signal_manager_build_info' \
        "$tag: GET /metrics on the metrics port"
    if [ "${#HC[@]}" -gt 0 ]; then
        if run_hc "$port"; then
            ok "$tag: the Dockerfile's HEALTHCHECK passes against the server"
        else
            bad "$tag: the Dockerfile's HEALTHCHECK fails against a healthy server"
        fi
        # The metrics port answers /health with 404: the check must look at the status.
        if run_hc "$mport"; then
            bad "$tag: the HEALTHCHECK passes against a port answering 404"
        else
            ok "$tag: the HEALTHCHECK fails on a 404"
        fi
    fi
    # Everything the server wrote is on the volume, owned by the image's user.
    foreign=$(find "$voldir" \( ! -user "$uid" -o ! -group "$gid" \) -print)
    if [ -f "$voldir/signal-manager.db" ] && [ -z "$foreign" ]; then
        ok "$tag: store on the volume, owned by $uid:$gid:" \
            "$(find "$voldir" -mindepth 1 -printf '%f ')"
    else
        bad "$tag: volume $volume: no signal-manager.db, or files not owned by $uid:$gid: $foreign"
    fi
    kill -TERM "$pid"
    for _ in $(seq $((STOP_TIMEOUT_S * 10))); do
        if ! kill -0 "$pid" 2>/dev/null; then stopped=1; break; fi
        sleep 0.1
    done
    if [ "$stopped" != 1 ]; then
        bad "$tag: SIGTERM: still running after ${STOP_TIMEOUT_S}s"
        return 0
    fi
    wait "$pid" || rc=$?
    pid=""
    if [ "$rc" -eq 0 ] && grep -q '"msg":"stopped"' "$log"; then
        ok "$tag: SIGTERM: drained and exited 0"
    else
        bad "$tag: SIGTERM: exit status $rc; log tail:"
        tail -n 5 "$log" | sed 's/^/    /' >&2
    fi
}

# ---- (b) the entrypoint as the image's user, here ---------------------------------

say "(b) the image's entrypoint, run here as its non-root user"
scratch=$root/b
mkdir -p "$scratch"
# The build stage's WORKDIR is where its COPY . put the repository.
bwork=$(instr "$BUILD_STAGE" WORKDIR | tail -n 1)
layout_ok=1
while read -r from src dest; do
    if [ "$from" != "--from=build" ]; then
        bad "unexpected COPY in the runtime stage: $from $src $dest"
        layout_ok=0
        continue
    fi
    rel=${src#"$bwork"/}
    if [ "$rel" = "$src" ]; then
        bad "COPY source $src is not under the build WORKDIR $bwork"
        layout_ok=0
        continue
    fi
    if [ "$rel" = build/signal-manager ]; then local_src=$BIN; else local_src=$rel; fi
    if [ -d "$local_src" ]; then
        mkdir -p "$scratch$dest"
        cp -R --preserve=mode "$local_src/." "$scratch$dest/"
    elif [ -f "$local_src" ]; then
        case "$dest" in
        */) mkdir -p "$scratch$dest"; cp --preserve=mode "$local_src" "$scratch$dest" ;;
        *) mkdir -p "$(dirname "$scratch$dest")"; cp --preserve=mode "$local_src" "$scratch$dest" ;;
        esac
    else
        bad "COPY source $src: $local_src does not exist here"
        layout_ok=0
    fi
done < <(instr "$RUNTIME" COPY)
[ "$layout_ok" = 1 ] && ok "(b): scratch layout from the runtime stage's COPY lines"
mkdir -p "$scratch$volume" "$scratch$workdir"
chmod 0750 "$scratch$volume"
as_user=()
if [ "$(id -u)" -eq 0 ]; then
    command -v setpriv >/dev/null 2>&1 || die "setpriv (util-linux) is needed to switch to uid $uid"
    chown "$uid:$gid" "$scratch$volume"
    as_user=(setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs)
else
    say "not root: running as uid $(id -u) instead of the image's $uid (already unprivileged)"
    uid=$(id -u)
    gid=$(id -g)
fi
# Image paths in ENV values and entrypoint arguments point into the scratch
# directory.
b_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent)
for kv in "${IMAGE_ENV[@]}"; do
    v=${kv#*=}
    [[ $v != /* ]] || v=$scratch$v
    b_env+=("${kv%%=*}=$v")
done
b_entry=()
for w in "${ENTRY[@]}"; do
    [[ $w != /* ]] || w=$scratch$w
    b_entry+=("$w")
done
[ -x "${b_entry[0]}" ] || bad "ENTRYPOINT ${ENTRY[0]} is not an executable the COPY lines put there"
say "(b): ${ENTRY[*]} as uid $uid, image paths under $scratch"
LAUNCH=("${as_user[@]}" env -i -C "$scratch$workdir" "${b_env[@]}"
        SIGNAL_MANAGER_SERVER_PORT=0 SIGNAL_MANAGER_METRICS_PORT=0 "${b_entry[@]}")
run_hc() {
    timeout "$hc_timeout" "${as_user[@]}" env -i -C "$scratch$workdir" "${b_env[@]}" \
        "SIGNAL_MANAGER_SERVER_PORT=$1" "${HC[@]}" >/dev/null 2>&1
}
exercise "(b)" "$scratch$volume" || true

# ---- (c) the image itself -------------------------------------------------------

say "(c) docker build"
if [ "${SM_CHECK_DOCKER:-1}" = 0 ]; then
    skip "docker build: SM_CHECK_DOCKER=0"
elif ! command -v docker >/dev/null 2>&1; then
    skip "docker build NOT run: the docker CLI is not installed; the image itself is unverified"
elif ! timeout 20 docker info >/dev/null 2>&1; then
    skip "docker build NOT run: no container engine is reachable (docker info failed);" \
         "the image was not built or started on this machine"
else
    if docker build -t "$IMAGE" . >"$root/docker-build.log" 2>&1; then
        ok "docker build -t $IMAGE ."
        cname="sm-image-check-$$"
        if docker run -d --name "$cname" "$IMAGE" >/dev/null; then
            health=""
            for _ in $(seq 60); do
                health=$(docker inspect -f '{{.State.Health.Status}}' "$cname" 2>/dev/null || true)
                [ "$health" = healthy ] && break
                sleep 1
            done
            if [ "$health" = healthy ]; then
                ok "container reports healthy"
            else
                bad "container health: \"$health\""
            fi
            docker stop -t 20 "$cname" >/dev/null || true
            code=$(docker inspect -f '{{.State.ExitCode}}' "$cname" 2>/dev/null || echo "?")
            if [ "$code" = 0 ]; then
                ok "docker stop: exit 0"
            else
                bad "docker stop: exit code $code"
            fi
            docker rm -f "$cname" >/dev/null 2>&1 || true
        else
            bad "docker run $IMAGE failed"
        fi
    else
        bad "docker build failed; last lines:"
        tail -n 20 "$root/docker-build.log" | sed 's/^/    /' >&2
    fi
fi

# ---- (d) both stages in a Debian 12 chroot (opt-in) -------------------------------

# Without an engine, the nearest thing to `docker build`: a debootstrap'd
# Debian 12 minbase root (what debian:12-slim is made from) per stage, the
# Dockerfile's ARG/ENV/WORKDIR/COPY/RUN lines carried out in order (RUN as
# /bin/sh -c in a chroot, COPY . honouring .dockerignore), then the final
# stage's entrypoint exercised in its chroot as its USER.  Needs root,
# debootstrap, rsync and the Debian mirror.  The roots live in a fresh
# directory under /var/tmp, removed afterwards; SM_ROOTFS_DIR names a
# directory that keeps the debootstrap'd base between runs instead (not under
# build/: the Makefile's `find build -name '*.d'` would read /etc/*.d of the
# roots), and SM_KEEP_ROOTFS=1 keeps the stage roots for a look.
ROOTFS_DIR=${SM_ROOTFS_DIR:-}
ROOTFS_TEMP=0
DEBIAN_MIRROR=${SM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
declare -A stage_alias=()

# .dockerignore as rsync filter rules (anchored at the context root unless
# the pattern starts with **/).
dockerignore_filter() {
    local p
    # Never the chroots themselves, whatever .dockerignore says.
    case "$ROOTFS_DIR" in /*) ;; *) printf -- '- /%s\n' "${ROOTFS_DIR#./}" ;; esac
    if [ ! -f .dockerignore ]; then
        bad "(d): no .dockerignore: the whole tree (build/, node_modules/, .git)" \
            "would be the context"
        return 0
    fi
    while IFS= read -r p || [ -n "$p" ]; do
        p=${p%"${p##*[![:space:]]}"}
        case "$p" in
        '' | '#'*) ;;
        '!'*) bad ".dockerignore exception $p is not handled by this check" ;;
        '**/'*) printf -- '- %s\n' "${p#'**/'}" ;;
        *) printf -- '- /%s\n' "${p#/}" ;;
        esac
    done <.dockerignore
}

copy_into() { # rootfs cwd "COPY arguments"
    local rootfs=$1 cwd=$2 from="" src dest sroot
    local -a a
    read -r -a a <<<"$3"
    if [[ ${a[0]} == --from=* ]]; then
        from=${a[0]#--from=}
        a=("${a[@]:1}")
    fi
    if [ "${#a[@]}" -ne 2 ]; then
        bad "(d): COPY $3: only one source and one destination are handled"
        return 1
    fi
    src=${a[0]}
    dest=${a[1]}
    [[ $dest == /* ]] || dest=$cwd/$dest
    if [ -n "$from" ]; then
        sroot=${stage_alias[$from]:-}
        if [ -z "$sroot" ]; then bad "(d): COPY --from=$from: no such stage"; return 1; fi
        if [ -d "$sroot$src" ]; then
            mkdir -p "$rootfs$dest"
            cp -a "$sroot$src/." "$rootfs$dest/"
        elif [ -e "$sroot$src" ]; then
            if [[ $dest == */ ]]; then
                mkdir -p "$rootfs$dest"
            else
                mkdir -p "$(dirname "$rootfs$dest")"
            fi
            cp -a "$sroot$src" "$rootfs$dest"
        else
            bad "(d): COPY --from=$from $src: not in that stage"
            return 1
        fi
    elif [ "$src" = . ]; then
        mkdir -p "$rootfs$dest"
        rsync -a --one-file-system --chown=0:0 --filter="merge $root/dockerignore.rules" \
            ./ "$rootfs$dest/"
    else
        bad "(d): COPY $src from the context: only \"COPY . DEST\" is handled"
        return 1
    fi
}

run_stage() { # n
    local n=$1 rootfs=$ROOTFS_DIR/stage$1 log=$ROOTFS_DIR/stage$1.log cwd=/ ins rest v kv
    local -a envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root) w
    if mountpoint -q "$rootfs/proc" 2>/dev/null; then umount "$rootfs/proc"; fi
    rm -rf --one-file-system "$rootfs"
    cp -a "$ROOTFS_DIR/base" "$rootfs"
    cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
    mount -t proc proc "$rootfs/proc"
    mounts+=("$rootfs/proc")
    : >"$log"
    while read -r ins rest; do
        case "${ins^^}" in
        FROM)
            if [[ ${rest,,} =~ [[:space:]]as[[:space:]]+([^[:space:]]+) ]]; then
                stage_alias[${BASH_REMATCH[1]}]=$rootfs
            fi
            [ "${rest%% *}" = debian:12-slim ] ||
                say "(d): warning: stage $n is FROM ${rest%% *}; the chroot is Debian 12 minbase"
            ;;
        ARG)
            [[ $rest == *=* ]] || continue
            v=${rest#*=}
            v=${v#\"}
            v=${v%\"}
            envs+=("${rest%%=*}=$v")
            ;;
        ENV)
            read -r -a w <<<"$rest"
            for kv in "${w[@]}"; do
                v=${kv#*=}
                v=${v#\"}
                v=${v%\"}
                envs+=("${kv%%=*}=$v")
            done
            ;;
        WORKDIR)
            cwd=$rest
            mkdir -p "$rootfs$cwd"
            ;;
        COPY)
            echo "+ COPY $rest" >>"$log"
            copy_into "$rootfs" "$cwd" "$rest" || return 1
            ;;
        RUN)
            echo "+ RUN $rest" >>"$log"
            if ! chroot "$rootfs" /usr/bin/env -i -C "$cwd" "${envs[@]}" /bin/sh -c "$rest" \
                >>"$log" 2>&1; then
                bad "(d): stage $n: RUN failed: ${rest:0:100}...; last lines of $log:"
                tail -n 15 "$log" | sed 's/^/    /' >&2
                return 1
            fi
            ;;
        esac
    done < <(stage "$n")
    ok "(d): stage $n built in a Debian 12 chroot (log: $log)"
}

say "(d) both stages in a Debian 12 chroot"
if [ "${SM_CHECK_ROOTFS:-0}" != 1 ]; then
    skip "(d): not asked for (SM_CHECK_ROOTFS=1, or make image-check-rootfs)"
elif [ "$(id -u)" -ne 0 ]; then
    skip "(d): needs root (chroot, mount)"
elif ! command -v debootstrap >/dev/null 2>&1 || ! command -v rsync >/dev/null 2>&1; then
    skip "(d): needs debootstrap and rsync (apt-get install debootstrap rsync)"
else
    if [ -z "$ROOTFS_DIR" ]; then
        ROOTFS_DIR=$(mktemp -d /var/tmp/sm-image-rootfs.XXXXXX)
        ROOTFS_TEMP=1
    fi
    case "$(realpath -m "$ROOTFS_DIR")/" in
    "$(realpath "$PWD")/build/"*)
        die "SM_ROOTFS_DIR must not be under build/ (see the comment of (d))" ;;
    esac
    mkdir -p "$ROOTFS_DIR"
    d_ok=1
    if [ ! -f "$ROOTFS_DIR/base/.sm-complete" ]; then
        say "(d): debootstrap --variant=minbase bookworm $ROOTFS_DIR/base"
        rm -rf --one-file-system "$ROOTFS_DIR/base"
        if debootstrap --variant=minbase bookworm "$ROOTFS_DIR/base" "$DEBIAN_MIRROR" \
            >"$ROOTFS_DIR/debootstrap.log" 2>&1; then
            # The apt sources of the debian:12-slim image.
            rm -f "$ROOTFS_DIR/base/etc/apt/sources.list"
            printf '%s\n' 'Types: deb' "URIs: $DEBIAN_MIRROR" 'Suites: bookworm bookworm-updates' \
                'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' \
                'Types: deb' "URIs: ${DEBIAN_MIRROR%/debian}/debian-security" \
                'Suites: bookworm-security' 'Components: main' \
                'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
                >"$ROOTFS_DIR/base/etc/apt/sources.list.d/debian.sources"
            touch "$ROOTFS_DIR/base/.sm-complete"
        else
            bad "(d): debootstrap failed; see $ROOTFS_DIR/debootstrap.log"
            d_ok=0
        fi
    fi
    dockerignore_filter >"$root/dockerignore.rules"
    if [ "$d_ok" = 1 ]; then
        for n in $(seq "$nstages"); do
            run_stage "$n" || { d_ok=0; break; }
        done
    fi
    if [ "$d_ok" = 1 ]; then
        rootfs=$ROOTFS_DIR/stage$nstages
        d_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent
               "${IMAGE_ENV[@]}")
        d_user=(/usr/bin/setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs)
        LAUNCH=(chroot "$rootfs" "${d_user[@]}" /usr/bin/env -i -C "$workdir" "${d_env[@]}"
                SIGNAL_MANAGER_SERVER_PORT=0 SIGNAL_MANAGER_METRICS_PORT=0 "${ENTRY[@]}")
        run_hc() {
            timeout "$hc_timeout" chroot "$rootfs" "${d_user[@]}" /usr/bin/env -i -C "$workdir" \
                "${d_env[@]}" "SIGNAL_MANAGER_SERVER_PORT=$1" "${HC[@]}" >/dev/null 2>&1
        }
        say "(d): ${ENTRY[*]} in $rootfs as uid $uid"
        exercise "(d)" "$rootfs$volume" || true
    fi
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || true; done
    mounts=()
    if [ "${SM_KEEP_ROOTFS:-0}" = 1 ]; then
        say "(d): the roots are kept in $ROOTFS_DIR"
    elif [ "$ROOTFS_TEMP" = 1 ]; then
        rm -rf --one-file-system "$ROOTFS_DIR"
    else
        for n in $(seq "$nstages"); do rm -rf --one-file-system "$ROOTFS_DIR/stage$n"; done
    fi
fi

say "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
