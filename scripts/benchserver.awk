# Reads `go test -bench Server ./server` output (BenchmarkServer/<op>
# lines with server_ops/s, inproc_ops/s, bare_ops/s, …) and prints, per
# operation, the mean of each figure over the runs, the additive bound
# 1/(1/inproc + 1/bare) of the means, the server's share of it, and the
# CPU the server adds per request (server − inproc − bare).
/^BenchmarkServer\// {
	op = $1; sub(/^BenchmarkServer\//, "", op); sub(/-[0-9]+$/, "", op)
	if (!(op in n)) order[++count] = op
	n[op]++
	for (i = 2; i < NF; i++) sum[op, $(i+1)] += $i
}
END {
	printf "%-18s %4s %9s %9s %9s %9s %7s %7s %7s %10s\n", "operation", "runs", "server/s", "inproc/s", "bare/s", "bound/s", "share", "p50 µs", "p99 µs", "+cpu µs/op"
	for (k = 1; k <= count; k++) {
		op = order[k]; c = n[op]
		s = sum[op, "server_ops/s"] / c; a = sum[op, "inproc_ops/s"] / c; b = sum[op, "bare_ops/s"] / c
		bound = 1 / (1 / a + 1 / b)
		extra = (sum[op, "server_cpu_µs"] - sum[op, "inproc_cpu_µs"] - sum[op, "bare_cpu_µs"]) / c
		printf "%-18s %4d %9.0f %9.0f %9.0f %9.0f %6.1f%% %7.0f %7.0f %10.1f\n", op, c, s, a, b, bound, 100 * s / bound, sum[op, "p50_µs"] / c, sum[op, "p99_µs"] / c, extra
	}
}
