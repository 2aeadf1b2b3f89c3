#!/usr/bin/env bash
# The benchmark command for the SPEC's performance targets (see docs/benchmarks.md).
#
#   benches/bench.sh            default sizes (a few minutes on 2 cores)
#   benches/bench.sh --quick    smaller sizes, for a fast look
#   benches/bench.sh --full     default sizes plus the 10M-row memory point and a longer rate run
#   --only rate,throughput,ingest,resume   run only these measurements
#   CAMPAIGN_BIN=path           measure that binary instead of building target/release/campaign
#   BENCH_KEEP=1                keep the work directory (inputs, ledgers, logs) for a look after
#
# Measures, each against a reference taken on the same machine in the same run:
#   rate        achieved send rate vs the configured qps; the simulator's busiest second
#   throughput  campaign rows/s (unlimited qps, ledger on) vs wrk req/s on the same endpoint
#   ingest      `campaign run --dry-run` on a generated input: wall time and rows/s
#   memory      max RSS of that dry run at 10k, 1M (and 10M) rows vs the 10k run
#   resume      startup to first send of a resumed run, and a dry run on an already-ingested
#               input, vs the first ingest
#
# Only 127.0.0.1. Every process it starts is bounded in time and killed on exit.
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

MODE=default
ONLY=rate,throughput,ingest,resume
while (($#)); do
  case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --only=*) ONLY=${1#--only=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
wanted() { [[ ",$ONLY," == *",$1,"* ]]; }

case "$MODE" in
  quick)
    RATE_QPS=100; RATE_SECONDS=10
    TPUT_ROWS=20000; WRK_SECONDS=5
    INGEST_ROWS=100000; MEM_SIZES=(10000 100000)
    RESUME_ROWS=100000 ;;
  default)
    RATE_QPS=200; RATE_SECONDS=60
    TPUT_ROWS=100000; WRK_SECONDS=10
    INGEST_ROWS=1000000; MEM_SIZES=(10000 1000000)
    RESUME_ROWS=1000000 ;;
  full)
    RATE_QPS=500; RATE_SECONDS=120
    TPUT_ROWS=200000; WRK_SECONDS=20
    INGEST_ROWS=1000000; MEM_SIZES=(10000 1000000 10000000)
    RESUME_ROWS=1000000 ;;
esac
CONCURRENCY=64          # campaign --concurrency and wrk -c for the throughput pair
WRK_THREADS=2
RESUME_SENDS=1000       # rows the interrupted first run sends before it is stopped
UNLIMITED_QPS=1000000

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CAMPAIGN_BIN:-$ROOT/target/release/campaign}"
LIB="$ROOT/benches/benchlib.py"
LUA="$ROOT/benches/wrk_bodies.lua"

say() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------------------------

ensure_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  [[ -x /usr/bin/time ]] || missing+=(time)
  command -v python3 >/dev/null || missing+=(python3)
  command -v timeout >/dev/null || missing+=(coreutils)
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# --- processes -------------------------------------------------------------------------------

PIDS=()
WORK=""

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  if [[ -n "$WORK" && -z "${BENCH_KEEP:-}" ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# Stops a process we started: SIGTERM, then up to $2 seconds, then SIGKILL. Sets EXIT_STATUS.
# (Not for use in $(...): the process must be a child of this shell.)
stop_pid() {
  local pid=$1 grace=${2:-10}
  EXIT_STATUS=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((grace * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || EXIT_STATUS=$?
  forget_pid "$pid"
}

SIM_PID=""
SIM_URL=""
STATS_URL=""

# Starts a fresh simulator on a free loopback port.
start_sim() {
  local out="$WORK/sim.$RANDOM.out"
  "$BIN" sim --addr 127.0.0.1:0 >"$out" 2>"$out.err" &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  for _ in $(seq 100); do
    if [[ -s "$out" ]] && head -n1 "$out" | grep -q '^listening on http://127\.0\.0\.1:'; then break; fi
    kill -0 "$SIM_PID" 2>/dev/null || die "the simulator exited: $(cat "$out.err")"
    sleep 0.1
  done
  SIM_URL="$(head -n1 "$out" | sed -n 's/^listening on //p')"
  [[ "$SIM_URL" == http://127.0.0.1:*/router/rest ]] || die "the simulator did not say where it listens"
  STATS_URL="${SIM_URL%/router/rest}/sim/stats"
}

# Stops the simulator; fails if it had already gone (another process stopped it mid-measurement).
stop_sim() {
  local gone=""
  if [[ -n "$SIM_PID" ]]; then
    kill -0 "$SIM_PID" 2>/dev/null || gone=1
    stop_pid "$SIM_PID" 10
  fi
  SIM_PID=""
  [[ -z "$gone" ]] || die "the simulator exited before the measurement ended (stopped by another process?); the numbers are void"
}

# A failed step: its last log lines, and whether the simulator is still up.
failed() {
  local what=$1 log=$2
  if [[ -n "$SIM_PID" ]] && ! kill -0 "$SIM_PID" 2>/dev/null; then
    what+=" (the simulator had exited: stopped by another process?)"
  fi
  die "$what: $(tail -n 5 "$log" 2>/dev/null)"
}

# Reads the simulator's counters into STAT_* variables.
read_stats() {
  local text key value
  text=$(python3 "$LIB" stats "$STATS_URL") || die "cannot read $STATS_URL"
  while IFS='=' read -r key value; do
    printf -v "STAT_$key" '%s' "$value"
  done <<<"$text"
}

# --- inputs and campaign files ---------------------------------------------------------------

# gen_input FILE ROWS [mixed]: open_id,name rows; "mixed" makes 0.1% invalid (padded id) and
# 0.1% duplicates, so validation and duplicate detection are part of the work.
gen_input() {
  awk -v n="$2" -v mixed="${3:-}" 'BEGIN {
    print "open_id,name"
    for (i = 1; i <= n; i++) {
      if (mixed && i % 1000 == 0)        printf " OID%09d,n%d\n", i, i
      else if (mixed && i % 1000 == 500) printf "OID%09d,n%d\n", i - 1, i
      else                               printf "OID%09d,n%d\n", i, i
    }
  }' >"$1"
}

# write_campaign FILE NAME URL INPUT QPS CONCURRENCY
write_campaign() {
  cat >"$1" <<EOF
name = "$2"
api  = "tmall.nrt.certificate.send"
input = "$4"
results = "$2.results.csv"
state = "$2.db"

[gateway]
url = "$3"
app_key = "10000001"
sign_method = "hmac-sha256"
timeout_ms = 10000

[limits]
qps = $5
concurrency = $6
max_attempts = 5

[params]
channel = 7
out_id = 123
biz_code = "23"
EOF
}

now() { date +%s.%N; }
# CPU seconds (user + system) a live process has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
# CPU seconds recorded by `/usr/bin/time -f '%U %S' -o FILE`.
cpu_in() { awk 'END { print $1 + $2 }' "$1"; }
calc() { python3 -c "print($1)"; }
fmt() { printf "%.${2:-1}f" "$1"; }

# Polls the simulator until `calls` reaches $1 or $2 seconds pass; returns 1 on timeout.
wait_calls() {
  local want=$1 limit=$2 deadline
  deadline=$(calc "$(now) + $limit")
  while :; do
    read_stats
    ((STAT_calls >= want)) && return 0
    [[ $(calc "$(now) > $deadline") == True ]] && return 1
    sleep 0.05
  done
}

REPORT=()
VERDICTS=()
report() { REPORT+=("$(printf "$@")"); }
verdict() { VERDICTS+=("$(printf '%-11s %-4s %s' "$1" "$2" "$3")"); }

# --- measurements ----------------------------------------------------------------------------

bench_rate() {
  local rows=$((RATE_QPS * RATE_SECONDS)) dir="$WORK/rate"
  mkdir -p "$dir"
  say "rate: $rows rows at qps $RATE_QPS (about ${RATE_SECONDS}s)"
  gen_input "$dir/in.csv" "$rows"
  start_sim
  write_campaign "$dir/c.toml" rate "$SIM_URL" in.csv "$RATE_QPS" 16
  local status=0
  timeout -k 5 $((RATE_SECONDS * 3 + 60)) "$BIN" -q run "$dir/c.toml" >"$dir/out" 2>"$dir/err" || status=$?
  ((status == 0)) || failed "rate run exited $status" "$dir/err"
  read_stats
  stop_sim
  local rate span
  eval "$(python3 "$LIB" sendrate "$dir/rate.db" | sed 's/^/SR_/')"
  local ratio
  ratio=$(calc "$SR_rate / $RATE_QPS")
  report 'rate        qps %s, %s rows: achieved %s/s over %ss = %s%% of qps; busiest second %s calls (limit %s); issued %s, duplicates %s' \
    "$RATE_QPS" "$rows" "$(fmt "$SR_rate" 2)" "$(fmt "$SR_span_s" 1)" "$(fmt "$(calc "$ratio * 100")" 2)" \
    "$STAT_peak_calls_per_second" "$RATE_QPS" "$STAT_issued" "$STAT_duplicates"
  local ok=met
  if [[ $(calc "abs($ratio - 1) <= 0.01 and $STAT_peak_calls_per_second <= $RATE_QPS") != True ]]; then ok=MISS; fi
  verdict rate "$ok" "within 1% of qps ($(fmt "$(calc "$ratio * 100")" 2)%) and no second above qps (peak $STAT_peak_calls_per_second/$RATE_QPS)"
}

bench_throughput() {
  local dir="$WORK/tput"
  mkdir -p "$dir"

  # Reference: wrk against a fresh simulator, every request a signed issuing call.
  local nbodies=200000
  say "throughput: reference wrk -t$WRK_THREADS -c$CONCURRENCY -d${WRK_SECONDS}s"
  start_sim
  python3 "$LIB" bodies "$dir/bodies.txt" "$nbodies"
  local sim_cpu0
  sim_cpu0=$(cpu_of "$SIM_PID")
  # /usr/bin/time outside `timeout`: it counts the CPU of what it waited for, and `timeout` is
  # the one that kills on overrun (time would die alone and leave the child running).
  BODIES="$dir/bodies.txt" /usr/bin/time -f '%U %S' -o "$dir/wrk.cpu" \
    timeout -k 5 $((WRK_SECONDS + 60)) wrk -t"$WRK_THREADS" -c"$CONCURRENCY" -d"${WRK_SECONDS}s" --timeout 10s -s "$LUA" "$SIM_URL" \
    >"$dir/wrk.out" 2>&1 || die "wrk failed: $(tail -n5 "$dir/wrk.out")"
  local wrk_sim_cpu
  wrk_sim_cpu=$(calc "$(cpu_of "$SIM_PID") - $sim_cpu0")
  read_stats
  stop_sim
  local line requests duration_us
  line=$(grep '^WRK ' "$dir/wrk.out") || die "no wrk summary: $(cat "$dir/wrk.out")"
  requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
  duration_us=$(sed -n 's/.*duration_us=\([0-9]*\).*/\1/p' <<<"$line")
  grep -q 'errors_status=0 ' <<<"$line" || say "wrk reported errors: $line"
  # Every call must have been a real issuance, or the reference measures error answers.
  ((STAT_calls >= requests)) || die "simulator saw $STAT_calls calls, wrk says $requests"
  ((STAT_outcome_issued == STAT_calls && STAT_rejected_signatures == 0)) ||
    die "wrk's calls were not all issued: $STAT_outcomes"
  local wrk_rps
  wrk_rps=$(calc "$requests / ($duration_us / 1e6)")
  report 'throughput  reference: wrk -t%s -c%s, %s signed issuing calls in %ss = %s req/s (simulator: %s calls, %s issued, 0 rejected)' \
    "$WRK_THREADS" "$CONCURRENCY" "$requests" "$(fmt "$(calc "$duration_us / 1e6")" 1)" "$(fmt "$wrk_rps" 0)" "$STAT_calls" "$STAT_issued"

  say "throughput: campaign, $TPUT_ROWS rows, qps $UNLIMITED_QPS, concurrency $CONCURRENCY"
  gen_input "$dir/in.csv" "$TPUT_ROWS"
  start_sim
  write_campaign "$dir/c.toml" tput "$SIM_URL" in.csv "$UNLIMITED_QPS" "$CONCURRENCY"
  local t0 t1 status=0
  sim_cpu0=$(cpu_of "$SIM_PID")
  t0=$(now)
  /usr/bin/time -f '%U %S' -o "$dir/campaign.cpu" timeout -k 5 600 \
    "$BIN" -q run "$dir/c.toml" >"$dir/out" 2>"$dir/err" || status=$?
  t1=$(now)
  ((status == 0)) || failed "throughput run exited $status" "$dir/err"
  local run_sim_cpu
  run_sim_cpu=$(calc "$(cpu_of "$SIM_PID") - $sim_cpu0")
  read_stats
  stop_sim
  ((STAT_issued == TPUT_ROWS && STAT_duplicates == 0)) ||
    die "throughput run: simulator issued $STAT_issued of $TPUT_ROWS, duplicates $STAT_duplicates"
  eval "$(python3 "$LIB" sendrate "$dir/tput.db" | sed 's/^/SR_/')"
  local wall_rate ratio
  wall_rate=$(calc "$TPUT_ROWS / ($t1 - $t0)")
  ratio=$(calc "$SR_answered_rate / $wrk_rps")
  report 'throughput  campaign: %s rows issued, send phase %s rows/s; whole command %ss = %s rows/s (ingest and results included)' \
    "$TPUT_ROWS" "$(fmt "$SR_answered_rate" 0)" "$(fmt "$(calc "$t1 - $t0")" 1)" "$(fmt "$wall_rate" 0)"
  report 'throughput  ratio campaign send phase / wrk = %s (whole command / wrk = %s)' \
    "$(fmt "$ratio" 3)" "$(fmt "$(calc "$wall_rate / $wrk_rps")" 3)"
  report 'throughput  CPU per call: wrk %s us + simulator %s us; campaign %s us (whole command) + simulator %s us; %s cores' \
    "$(fmt "$(calc "$(cpu_in "$dir/wrk.cpu") / $requests * 1e6")" 1)" "$(fmt "$(calc "$wrk_sim_cpu / $requests * 1e6")" 1)" \
    "$(fmt "$(calc "$(cpu_in "$dir/campaign.cpu") / $TPUT_ROWS * 1e6")" 1)" "$(fmt "$(calc "$run_sim_cpu / $TPUT_ROWS * 1e6")" 1)" "$(nproc)"
  local ok=met
  [[ $(calc "$ratio >= 0.8") == True ]] || ok=MISS
  verdict throughput "$ok" "campaign/wrk = $(fmt "$ratio" 3) (taken as met at >= 0.8)"
}

# dry_run FILE ROWS: runs `campaign run --dry-run` under /usr/bin/time -v on a fresh state path;
# sets DRY_WALL (s) and DRY_RSS (KiB).
dry_run() {
  local campaign=$1 state=$2 log=$3 t0 t1 status=0
  t0=$(now)
  /usr/bin/time -v -o "$log.time" timeout -k 5 900 "$BIN" -q run "$campaign" --dry-run --state "$state" \
    >"$log.out" 2>"$log.err" || status=$?
  t1=$(now)
  ((status == 0)) || die "dry run exited $status: $(tail -n5 "$log.err")"
  DRY_WALL=$(calc "$t1 - $t0")
  DRY_RSS=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log.time")
}

declare -A RSS=()
declare -A DRY=()

bench_ingest_and_memory() {
  local dir="$WORK/ingest" n
  mkdir -p "$dir"
  for n in "${MEM_SIZES[@]}" "$INGEST_ROWS"; do
    [[ -n "${RSS[$n]:-}" ]] && continue
    say "ingest: dry run on $n rows"
    [[ -f "$dir/in-$n.csv" ]] || gen_input "$dir/in-$n.csv" "$n" mixed
    write_campaign "$dir/c-$n.toml" "ingest-$n" http://127.0.0.1:9/router/rest "in-$n.csv" 50 16
    dry_run "$dir/c-$n.toml" "$dir/none-$n.db" "$dir/dry-$n"
    RSS[$n]=$DRY_RSS
    DRY[$n]=$DRY_WALL
    [[ ! -e "$dir/none-$n.db" ]] || die "the dry run created a state file"
  done
  local wall=${DRY[$INGEST_ROWS]}
  report 'ingest      dry run, %s rows (0.1%% invalid, 0.1%% duplicates): %ss = %s rows/s, max RSS %s MiB' \
    "$INGEST_ROWS" "$(fmt "$wall" 2)" "$(fmt "$(calc "$INGEST_ROWS / $wall")" 0)" "$(fmt "$(calc "${RSS[$INGEST_ROWS]} / 1024")" 1)"
  local ok=met
  [[ $(calc "$wall <= 10") == True ]] || ok=MISS
  verdict ingest "$ok" "$INGEST_ROWS rows validated in $(fmt "$wall" 2)s (taken as met at <= 10 s)"

  local base=${RSS[${MEM_SIZES[0]}]} line="" worst=1
  for n in "${MEM_SIZES[@]}"; do
    local r
    r=$(calc "${RSS[$n]} / $base")
    line+="$(printf '%s rows %s MiB (x%s); ' "$n" "$(fmt "$(calc "${RSS[$n]} / 1024")" 1)" "$(fmt "$r" 2)")"
    worst=$(calc "max($worst, $r)")
  done
  report 'memory      max RSS of the dry run: %s' "${line%; }"
  ok=met
  [[ $(calc "$worst <= 1.5") == True ]] || ok=MISS
  verdict memory "$ok" "largest/10k max RSS = x$(fmt "$worst" 2) (taken as flat at <= x1.5)"
}

bench_resume() {
  local dir="$WORK/resume" rows=$RESUME_ROWS
  mkdir -p "$dir"
  local input="$WORK/ingest/in-$rows.csv"
  if [[ ! -f "$input" ]]; then gen_input "$dir/in.csv" "$rows" mixed; input="$dir/in.csv"; fi
  start_sim
  write_campaign "$dir/c.toml" resume "$SIM_URL" "$input" 2000 16

  # First run: ingests everything, sends $RESUME_SENDS rows, is interrupted (SIGTERM).
  say "resume: first run on $rows rows (ingest, then $RESUME_SENDS sends, then SIGTERM)"
  local t0 pid
  t0=$(now)
  "$BIN" run "$dir/c.toml" >"$dir/run1.out" 2>"$dir/run1.err" &
  pid=$!
  PIDS+=("$pid")
  wait_calls "$RESUME_SENDS" 600 || die "first run: no $RESUME_SENDS sends within 600s: $(tail -n3 "$dir/run1.err")"
  local t_stop hwm
  hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status")
  t_stop=$(now)
  stop_pid "$pid" 300
  [[ "$EXIT_STATUS" == 130 ]] || die "first run: exit $EXIT_STATUS after SIGTERM (expected 130): $(tail -n3 "$dir/run1.err")"
  local first stop_cost
  first=$(python3 "$LIB" firstsend "$dir/resume.db" "$t0")
  stop_cost=$(calc "$(now) - $t_stop")

  # Dry run on the already-ingested, unchanged input.
  say "resume: dry run on the ingested input"
  dry_run "$dir/c.toml" "$dir/resume.db" "$dir/dry2"
  local dry2=$DRY_WALL

  # Resumed run: time from launch to its first send, then stop it.
  say "resume: resumed run"
  read_stats
  local before=$STAT_calls
  t0=$(now)
  "$BIN" run "$dir/c.toml" >"$dir/run2.out" 2>"$dir/run2.err" &
  pid=$!
  PIDS+=("$pid")
  wait_calls $((before + 1)) 120 || die "resumed run: no send within 120s: $(tail -n3 "$dir/run2.err")"
  stop_pid "$pid" 300
  [[ "$EXIT_STATUS" == 130 ]] || die "resumed run: exit $EXIT_STATUS after SIGTERM (expected 130)"
  read_stats
  stop_sim
  local second
  second=$(python3 "$LIB" firstsend "$dir/resume.db" "$t0")
  ((STAT_duplicates == 0)) || die "resume: the simulator saw $STAT_duplicates duplicate issuances"

  local first_dry=${DRY[$rows]:-}
  report 'resume      %s rows: first run, launch to first send (ingest included) %ss; resumed run, launch to first send %ss (ratio %s)' \
    "$rows" "$(fmt "$first" 3)" "$(fmt "$second" 3)" "$(fmt "$(calc "$second / $first")" 4)"
  if [[ -n "$first_dry" ]]; then
    report 'resume      dry run on the ingested unchanged input %ss vs first dry run %ss (ratio %s)' \
      "$(fmt "$dry2" 3)" "$(fmt "$first_dry" 3)" "$(fmt "$(calc "$dry2 / $first_dry")" 4)"
  else
    report 'resume      dry run on the ingested unchanged input %ss' "$(fmt "$dry2" 3)"
  fi
  report 'resume      (first run: peak RSS %s MiB after ingesting %s rows into the state file; SIGTERM to exit, results CSV included, %ss; simulator duplicates %s)' \
    "$(fmt "$(calc "${hwm:-0} / 1024")" 1)" "$rows" "$(fmt "$stop_cost" 1)" "$STAT_duplicates"
  local ok=met
  [[ $(calc "$second <= 0.1") == True ]] || ok=MISS
  verdict resume "$ok" "resumed run's first send after $(fmt "$(calc "$second * 1000")" 0) ms (taken as milliseconds at <= 100 ms)"
}

# --- main ------------------------------------------------------------------------------------

main() {
  local started
  started=$(now)
  LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
  ensure_tools
  if [[ -z "${CAMPAIGN_BIN:-}" ]]; then
    say "building (cargo build --release)"
    (cd "$ROOT" && timeout 3600 cargo build --release --quiet) || die "cargo build --release failed"
  fi
  [[ -x "$BIN" ]] || die "no $BIN after the build"
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/campaign-bench.XXXXXX")"
  export TOP_APP_SECRET=sim-secret TOP_SESSION=sim-session
  export RUST_LOG=campaign=warn NO_COLOR=1
  say "mode $MODE, work dir $WORK"

  if wanted rate; then bench_rate; fi
  if wanted throughput; then bench_throughput; fi
  if wanted ingest; then bench_ingest_and_memory; fi
  if wanted resume; then bench_resume; fi

  local cpu
  cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)
  local commit
  commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
  echo "campaign benchmark ($MODE) $(date -u +%Y-%m-%dT%H:%MZ), commit $commit, $(nproc) cores ($cpu), load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '%s\n' "${REPORT[@]}"
  echo "targets:"
  printf '  %s\n' "${VERDICTS[@]}"
  echo "total $(fmt "$(calc "$(now) - $started")" 0)s"
}

main
