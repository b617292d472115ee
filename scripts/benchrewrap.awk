# Reads rounds of BenchmarkGCMPair1K (hsm, -cpu 2) and BenchmarkRewrap
# (keystore) run one after the other, and prints rewrap's records/s as a
# share of the raw GCM pair's ops/s (a decrypt and an encrypt of 1 KiB on
# every core: the ceiling a rewrap can reach), median and range over
# rounds.
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^BenchmarkGCMPair1K\/raw-2/ { for (i = 2; i < NF; i++) if ($(i+1) == "ops/s") raw[++nr] = $i }
/^BenchmarkRewrap\/sqlite/ { for (i = 2; i < NF; i++) if ($(i+1) == "records/s") rw[++nw] = $i }
END {
	n = nr < nw ? nr : nw
	if (n == 0) { print "no rounds of both GCMPair1K/raw-2 and Rewrap/sqlite"; exit 1 }
	lo = 1e18; hi = 0
	for (r = 1; r <= n; r++) {
		share[r] = 100 * rw[r] / raw[r]
		if (share[r] < lo) lo = share[r]
		if (share[r] > hi) hi = share[r]
	}
	printf "\nrewrap (SQLite) %.0f records/s, raw GCM pair %.0f/s: %.1f%% [%.1f–%.1f%%] over %d rounds\n", median(rw, n), median(raw, n), median(share, n), lo, hi, n
}
