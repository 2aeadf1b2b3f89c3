#!/usr/bin/env bash
# The benchmark command for campaign's performance targets (see docs/benchmarks.md).
#
#   benches/bench.sh            default sizes (about 5 minutes on 2 quiet cores)
#   benches/bench.sh --quick    smaller sizes, for a fast look (about 3 minutes)
#   benches/bench.sh --full     larger sizes: the 10M-row memory point, a longer rate run, 60 s
#                               latency runs and the 5M-row scale point (15-20 minutes, 8 GB of disk)
#   --only rate,throughput,ingest,resume,latency,scale   run only these measurements
#   CAMPAIGN_BIN=path           measure that binary instead of building target/release/campaign
#   BENCH_SCALE_ROWS=N          rows of the big scale point (default 1M; --quick 300k, --full 5M)
#   BENCH_KEEP=1                keep the work directory (inputs, ledgers, logs) for a look after
#
# Measures, each against a reference taken on the same machine in the same run:
#   rate        achieved send rate vs the configured qps; the simulator's busiest second
#   throughput  campaign rows/s (unlimited qps, ledger on) vs wrk req/s on the same endpoint
#   ingest      `campaign run --dry-run` on a generated input: wall time and rows/s
#   memory      max RSS of that dry run at 10k, 1M (and 10M) rows vs the 10k run
#   resume      startup to first send of a resumed run, and a dry run on an already-ingested
#               input, vs the first ingest
#   latency     rate vs qps 500 and 2000 against a simulator with 80 ms latency and a 1% tail
#               at 800 ms, concurrency unset (adaptive); then concurrency = 16 at qps 500, whose
#               summary must name the cap
#   scale       on a finished campaign of 1M (5M) rows vs one of 100k: status, a run with
#               nothing to send (and whether it rewrote the results file), verify, the results
#               writer (export), ingest (dry run); wall time, rows/s, max RSS
#
# Only 127.0.0.1. Every process it starts is bounded in time and killed on exit.

# STAT_* and SR_* are set by name (read_stats, eval of benchlib.py's KEY=VALUE lines).
# shellcheck disable=SC2154
set -euo pipefail

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }

MODE=default
ALL=rate,throughput,ingest,resume,latency,scale
ONLY=$ALL
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
for m in ${ONLY//,/ }; do
  [[ ",$ALL," == *",$m,"* ]] || { echo "bench.sh: unknown measurement $m (known: $ALL)" >&2; exit 2; }
done

case "$MODE" in
  quick)
    RATE_QPS=100; RATE_SECONDS=10
    TPUT_ROWS=20000; WRK_SECONDS=5
    INGEST_ROWS=100000; MEM_SIZES=(10000 100000)
    RESUME_ROWS=100000
    LATENCY_SECONDS=8; SCALE_ROWS=300000 ;;
  default)
    RATE_QPS=200; RATE_SECONDS=60
    TPUT_ROWS=100000; WRK_SECONDS=10
    INGEST_ROWS=1000000; MEM_SIZES=(10000 1000000)
    RESUME_ROWS=1000000
    LATENCY_SECONDS=20; SCALE_ROWS=1000000 ;;
  full)
    RATE_QPS=500; RATE_SECONDS=120
    TPUT_ROWS=200000; WRK_SECONDS=20
    INGEST_ROWS=1000000; MEM_SIZES=(10000 1000000 10000000)
    RESUME_ROWS=1000000
    LATENCY_SECONDS=60; SCALE_ROWS=5000000 ;;
esac
SCALE_ROWS=${BENCH_SCALE_ROWS:-$SCALE_ROWS}
[[ "$SCALE_ROWS" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: BENCH_SCALE_ROWS must be a row count, not $SCALE_ROWS" >&2; exit 2; }
SCALE_REF_ROWS=100000   # the reference point of the scale figures
CONCURRENCY=64          # campaign --concurrency and wrk -c for the throughput pair
WRK_THREADS=2
RESUME_SENDS=1000       # rows the interrupted first run sends before it is stopped
LATENCY_SIM=(--latency-ms 80 --latency-tail 1%:800ms)
LATENCY_CAP=16          # the fixed concurrency of the third latency run
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
  if wanted throughput; then command -v wrk >/dev/null || missing+=(wrk); fi
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

# Starts a fresh simulator on a free loopback port; arguments go to `campaign sim`.
start_sim() {
  local out="$WORK/sim.$RANDOM.out"
  "$BIN" sim --addr 127.0.0.1:0 "$@" >"$out" 2>"$out.err" &
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

# write_campaign FILE NAME URL INPUT QPS CONCURRENCY [TOP-LEVEL-LINE]: an empty CONCURRENCY
# leaves `concurrency` unset (adaptive in-flight count).
write_campaign() {
  cat >"$1" <<EOF
name = "$2"
api  = "tmall.nrt.certificate.send"
input = "$4"
results = "$2.results.csv"
state = "$2.db"
${7:-}

[gateway]
url = "$3"
app_key = "10000001"
sign_method = "hmac-sha256"
timeout_ms = 10000

[limits]
qps = $5
${6:+concurrency = $6}
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
# shellcheck disable=SC2059 # report's first argument is the format
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

# latency_run NAME QPS ROWS [CONCURRENCY]: one campaign against a simulator with realistic
# latency; checks every row was issued once; sets SR_* (send rate from the ledger), STAT_* (the
# simulator's counters), LAT_PEAK (the summary's peak in flight), LAT_BELOW (its `below qps:`
# line, or empty).
latency_run() {
  local name=$1 qps=$2 rows=$3 conc=${4:-} dir="$WORK/latency/$1"
  mkdir -p "$dir"
  say "latency: $rows rows at qps $qps, concurrency ${conc:-unset}, simulator ${LATENCY_SIM[*]}"
  gen_input "$dir/in.csv" "$rows"
  start_sim "${LATENCY_SIM[@]}"
  write_campaign "$dir/c.toml" "$name" "$SIM_URL" in.csv "$qps" "$conc"
  local status=0
  # Not -q: the summary (stdout) carries the peak in flight and the shortfall line.
  timeout -k 5 $((LATENCY_SECONDS * 5 + 120)) "$BIN" run "$dir/c.toml" >"$dir/out" 2>"$dir/err" || status=$?
  ((status == 0)) || failed "latency run $name exited $status" "$dir/err"
  read_stats
  stop_sim
  ((STAT_issued == rows && STAT_duplicates == 0)) ||
    die "latency run $name: simulator issued $STAT_issued of $rows, duplicates $STAT_duplicates"
  eval "$(python3 "$LIB" sendrate "$dir/$name.db" | sed 's/^/SR_/')"
  LAT_PEAK=$(sed -n 's/^ *peak in flight: \([0-9]*\).*/\1/p' "$dir/out")
  [[ -n "$LAT_PEAK" ]] || die "latency run $name: no 'peak in flight' in the summary: $(cat "$dir/out")"
  LAT_BELOW=$(grep -m1 -E '^ *below qps:' "$dir/out" | sed 's/^ *//' || true)
}

bench_latency() {
  local qps rows ratio ok
  for qps in 500 2000; do
    rows=$((qps * LATENCY_SECONDS))
    latency_run "lat$qps" "$qps" "$rows"
    ratio=$(calc "$SR_rate / $qps")
    report 'latency     qps %s, concurrency unset, %s rows: achieved %s/s over %ss = %s of qps; busiest second %s calls (limit %s); peak in flight %s; shortfall line: %s' \
      "$qps" "$rows" "$(fmt "$SR_rate" 1)" "$(fmt "$SR_span_s" 1)" "$(fmt "$ratio" 3)" \
      "$STAT_peak_calls_per_second" "$qps" "$LAT_PEAK" "${LAT_BELOW:-none}"
    ok=met
    if [[ $(calc "$ratio >= 0.98 and $STAT_peak_calls_per_second <= $qps") != True ]]; then ok=MISS; fi
    verdict latency "$ok" "qps $qps at 80 ms (1% at 800 ms), adaptive: achieved/qps = $(fmt "$ratio" 3) (>= 0.98), busiest second $STAT_peak_calls_per_second/$qps"
  done

  # A fixed cap below what the rate needs (16 / ~0.087 s ≈ 180/s): the summary must say so.
  qps=500
  rows=$((LATENCY_SECONDS * 200))
  latency_run "lat${qps}cap$LATENCY_CAP" "$qps" "$rows" "$LATENCY_CAP"
  ratio=$(calc "$SR_rate / $qps")
  report 'latency     qps %s, concurrency = %s, %s rows: achieved %s/s over %ss = %s of qps; busiest second %s; peak in flight %s' \
    "$qps" "$LATENCY_CAP" "$rows" "$(fmt "$SR_rate" 1)" "$(fmt "$SR_span_s" 1)" "$(fmt "$ratio" 3)" \
    "$STAT_peak_calls_per_second" "$LAT_PEAK"
  report 'latency     its summary: %s' "${LAT_BELOW:-(no below qps: line)}"
  ok=met
  [[ "$LAT_BELOW" == *"in-flight cap $LATENCY_CAP"* && "$LAT_PEAK" -le "$LATENCY_CAP" ]] || ok=MISS
  verdict latency-cap "$ok" "concurrency = $LATENCY_CAP at qps $qps: the summary names the cap ('in-flight cap $LATENCY_CAP' in its below qps: line), peak in flight $LAT_PEAK"
}

# timed LOG CMD...: runs CMD under `/usr/bin/time -v` and `timeout`, stdout and stderr to
# LOG.out and LOG.err; dies unless it exits 0. Sets T_WALL (s) and T_RSS (KiB).
timed() {
  local log=$1 t0 t1 status=0
  shift
  t0=$(now)
  /usr/bin/time -v -o "$log.time" timeout -k 5 3600 "$@" >"$log.out" 2>"$log.err" || status=$?
  t1=$(now)
  ((status == 0)) || failed "$(basename "$log"): $* exited $status" "$log.err"
  T_WALL=$(calc "$t1 - $t0")
  T_RSS=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log.time")
}

# Identity of a file for "was it rewritten": inode, modification time, MD5.
file_id() { printf 'inode %s, mtime %s, md5 %s' "$(stat -c %i "$1")" "$(stat -c %y "$1")" "$(md5sum <"$1" | cut -d' ' -f1)"; }

declare -A SC=()   # SC[<rows>.<figure>.wall|rss] from scale_point

# scale_point N: builds a finished N-row campaign (every row issued against a fresh simulator at
# unlimited qps, reconcile = false), then times status, a run with nothing to send, verify, the
# results writer and a dry run on a fresh state.
scale_point() {
  local n=$1 dir="$WORK/scale/$1"
  mkdir -p "$dir"
  say "scale: $n rows: building a finished campaign (qps $UNLIMITED_QPS, concurrency $CONCURRENCY)"
  gen_input "$dir/in.csv" "$n"
  start_sim
  write_campaign "$dir/c.toml" scale "$SIM_URL" in.csv "$UNLIMITED_QPS" "$CONCURRENCY" "reconcile = false"
  timed "$dir/build" "$BIN" -q run "$dir/c.toml" --yes
  SC[$n.build.wall]=$T_WALL
  read_stats
  ((STAT_issued == n && STAT_duplicates == 0)) ||
    die "scale build of $n rows: simulator issued $STAT_issued, duplicates $STAT_duplicates"
  local results="$dir/scale.results.csv" before after calls=$STAT_calls
  [[ -f "$results" ]] || die "scale build of $n rows wrote no $results"
  before=$(file_id "$results")

  say "scale: $n rows: status"
  timed "$dir/status" "$BIN" status "$dir/c.toml"
  SC[$n.status.wall]=$T_WALL SC[$n.status.rss]=$T_RSS

  say "scale: $n rows: run with nothing to send"
  timed "$dir/rerun" "$BIN" run "$dir/c.toml" --yes
  SC[$n.rerun.wall]=$T_WALL SC[$n.rerun.rss]=$T_RSS
  read_stats
  ((STAT_calls == calls)) || die "scale: the run with nothing to send made $((STAT_calls - calls)) calls"
  stop_sim
  after=$(file_id "$results")
  SC[$n.results.before]=$before SC[$n.results.after]=$after

  say "scale: $n rows: verify"
  timed "$dir/verify" "$BIN" verify "$dir/c.toml"
  SC[$n.verify.wall]=$T_WALL SC[$n.verify.rss]=$T_RSS

  say "scale: $n rows: export (results writer)"
  timed "$dir/export" "$BIN" export "$dir/c.toml" --results "$dir/export.csv"
  SC[$n.writer.wall]=$T_WALL SC[$n.writer.rss]=$T_RSS
  local lines
  lines=$(wc -l <"$dir/export.csv")
  ((lines == n + 1)) || die "scale: export wrote $lines lines for $n rows"
  rm -f "$dir/export.csv"

  # A campaign of its own (own results path): a fresh state beside a results file that shows
  # rows issued is refused, rightly.
  say "scale: $n rows: dry run on a fresh state"
  write_campaign "$dir/dry.toml" ingest http://127.0.0.1:9/router/rest in.csv 50 16
  dry_run "$dir/dry.toml" "$dir/fresh.db" "$dir/dry"
  [[ ! -e "$dir/fresh.db" ]] || die "the dry run created a state file"
  SC[$n.ingest.wall]=$DRY_WALL SC[$n.ingest.rss]=$DRY_RSS
  # The big point's files are gigabytes at 5M rows: keep only the logs.
  [[ -n "${BENCH_KEEP:-}" ]] || rm -f "$dir"/in.csv "$dir"/scale.db* "$results"
}

# scale_line FIGURE LABEL [rows/s]: one report line, the reference and the big point.
scale_line() {
  local fig=$1 label=$2 per=${3:-} n line=""
  for n in "$SCALE_REF_ROWS" "$SCALE_ROWS"; do
    local w=${SC[$n.$fig.wall]}
    line+="$(printf '%s rows %ss' "$n" "$(fmt "$w" 3)")"
    [[ -z "$per" ]] || line+=" = $(fmt "$(calc "$n / $w")" 0) rows/s"
    line+=", max RSS $(fmt "$(calc "${SC[$n.$fig.rss]} / 1024")" 1) MiB; "
  done
  report 'scale       %-26s %s; big/%s time x%s, RSS x%s' "$label:" "${line%; }" "$SCALE_REF_ROWS" \
    "$(fmt "$(calc "${SC[$SCALE_ROWS.$fig.wall]} / ${SC[$SCALE_REF_ROWS.$fig.wall]}")" 2)" \
    "$(fmt "$(calc "${SC[$SCALE_ROWS.$fig.rss]} / ${SC[$SCALE_REF_ROWS.$fig.rss]}")" 2)"
}

bench_scale() {
  scale_point "$SCALE_REF_ROWS"
  [[ "$SCALE_ROWS" == "$SCALE_REF_ROWS" ]] || scale_point "$SCALE_ROWS"
  local n=$SCALE_ROWS ok w rate
  report 'scale       build (not a target): %s rows issued in %ss, %s rows in %ss (qps %s, concurrency %s, reconcile = false)' \
    "$SCALE_REF_ROWS" "$(fmt "${SC[$SCALE_REF_ROWS.build.wall]}" 1)" "$n" "$(fmt "${SC[$n.build.wall]}" 1)" "$UNLIMITED_QPS" "$CONCURRENCY"
  scale_line status "status"
  scale_line rerun "run, nothing to send"
  report 'scale       results file before that run: %s' "${SC[$n.results.before]}"
  report 'scale       results file after that run:  %s' "${SC[$n.results.after]}"
  scale_line verify "verify" per
  scale_line writer "results writer (export)" per
  scale_line ingest "ingest (dry run)" per

  w=${SC[$n.status.wall]}; ok=met
  [[ $(calc "$w < 1") == True ]] || ok=MISS
  verdict status "$ok" "$n rows: campaign status in $(fmt "$w" 3)s (target < 1 s at 5M rows)"
  w=${SC[$n.rerun.wall]}; ok=met
  [[ $(calc "$w < 2") == True ]] || ok=MISS
  verdict rerun "$ok" "$n rows: campaign run with nothing to send in $(fmt "$w" 3)s (target < 2 s at 5M rows)"
  local what="left the up-to-date results file alone (same inode, mtime and MD5)"
  ok=met
  if [[ "${SC[$n.results.before]}" != "${SC[$n.results.after]}" ]]; then
    ok=MISS what="rewrote the up-to-date results file (inode, mtime or MD5 changed)"
  fi
  verdict no-rewrite "$ok" "$n rows: the run with nothing to send $what"
  local fig target name
  for fig in verify:300000:verify writer:300000:writer ingest:200000:ingest-big; do
    IFS=: read -r fig target name <<<"$fig"
    rate=$(calc "$n / ${SC[$n.$fig.wall]}"); ok=met
    [[ $(calc "$rate >= $target") == True ]] || ok=MISS
    verdict "$name" "$ok" "$n rows: $(fmt "$rate" 0) rows/s (target >= $target rows/s)"
  done
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
  if wanted latency; then bench_latency; fi
  if wanted scale; then bench_scale; fi

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
