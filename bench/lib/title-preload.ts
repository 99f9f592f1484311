/**
 * Preloaded (`node -r`) into every benchmark server process: sets its process title (what `ps`
 * and /proc/<pid>/cmdline show) to `rtg-bench <name>`, from BENCH_PROCESS_TITLE. A benchmark's
 * servers are then easy to tell from other gateways on the machine, and a broad
 * `pkill -f services/gateway/main.js` run by someone else on a shared machine does not stop them
 * in the middle of a measurement. Changes nothing else (process.argv keeps the real arguments).
 */
if (process.env.BENCH_PROCESS_TITLE) process.title = `rtg-bench ${process.env.BENCH_PROCESS_TITLE}`;
