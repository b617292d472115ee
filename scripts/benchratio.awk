# Reads `go test -bench` output with Benchmark<Op>/keyward and /raw pairs
# (or /device, the bare device op a higher-level benchmark rests on)
# reporting ops/s, and prints keyward's rate as a share of raw: the median
# and range over rounds of the share within each round. Round i pairs the
# i-th keyward run of an operation with its i-th raw run, so run rounds
# as `-count 1` in a loop: each round's two sides then run side by side,
# and the machine's drift falls on both (with -count N, all keyward runs
# come before all raw runs and the drift on one side only).
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^Benchmark/ {
	name = $1
	rate = ""
	for (i = 2; i < NF; i++) if ($(i+1) == "ops/s") rate = $i
	if (rate == "") next
	n = split(name, parts, "/")
	side = parts[n]
	cpu = "1"
	if (match(side, /-[0-9]+$/)) { cpu = substr(side, RSTART + 1); side = substr(side, 1, RSTART - 1) }
	op = parts[1]
	for (i = 2; i < n; i++) op = op "/" parts[i]
	sub(/^Benchmark/, "", op)
	key = op " cpu=" cpu
	if (!(key in seen)) { seen[key] = 1; order[++count] = key }
	if (side == "device") side = "raw"
	if (side != "keyward" && side != "raw") next
	runs[key, side]++
	rates[key, side, runs[key, side]] = rate
}
END {
	printf "\n%-22s %14s %14s %8s %17s %6s\n", "operation", "keyward ops/s", "raw ops/s", "share", "range", "rounds"
	for (i = 1; i <= count; i++) {
		k = order[i]
		m = runs[k, "keyward"] < runs[k, "raw"] ? runs[k, "keyward"] : runs[k, "raw"]
		if (m == 0) continue
		lo = 1e18; hi = 0
		for (r = 1; r <= m; r++) {
			kw[r] = rates[k, "keyward", r]; rw[r] = rates[k, "raw", r]
			share[r] = 100 * kw[r] / rw[r]
			if (share[r] < lo) lo = share[r]
			if (share[r] > hi) hi = share[r]
		}
		mk = median(kw, m); mr = median(rw, m); ms = median(share, m)
		printf "%-22s %14.0f %14.0f %7.1f%% %7.1f–%6.1f%% %6d\n", k, mk, mr, ms, lo, hi, m
	}
}
