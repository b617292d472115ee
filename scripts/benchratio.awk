# Reads `go test -bench` output with Benchmark<Op>/keyward and /raw pairs
# (or /device, the bare device op a higher-level benchmark rests on)
# reporting ops/s, and prints keyward's rate as a share of raw.
/^Benchmark/ {
	name = $1
	for (i = 2; i < NF; i++) if ($(i+1) == "ops/s") rate = $i
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
	sum[key, side] += rate; cnt[key, side]++
}
END {
	printf "\n%-22s %14s %14s %8s\n", "operation", "keyward ops/s", "raw ops/s", "share"
	for (i = 1; i <= count; i++) {
		k = order[i]
		if (cnt[k, "keyward"] && cnt[k, "raw"]) {
			kw = sum[k, "keyward"] / cnt[k, "keyward"]; raw = sum[k, "raw"] / cnt[k, "raw"]
			printf "%-22s %14.0f %14.0f %7.1f%%\n", k, kw, raw, 100 * kw / raw
		}
	}
}
