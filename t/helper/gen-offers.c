/*
 * gen-offers — write N random capability documents as JSON lines, for the
 * matching benchmark (t/perf/match) and tests: `gen-offers N [SEED]`.  The
 * values spread over realistic ranges (1–128 cores, 1–512 GiB of RAM, 0–8
 * GPUs of three vendors, four continents, prices 1–40 minor units) so that a
 * typical requirement keeps a few percent of them.  Same seed, same output.
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t st = 88172645463325252ULL;

static uint64_t rnd(void)
{
	st ^= st << 13;
	st ^= st >> 7;
	st ^= st << 17;
	return st;
}

static unsigned pick(unsigned n)
{
	return (unsigned)(rnd() % n);
}

int main(int argc, char **argv)
{
	static const char *const arch[] = { "x86_64", "x86_64", "x86_64", "aarch64" };
	static const char *const vend[] = { "nvidia", "amd", "intel" };
	static const char *const cont[] = { "EU", "NA", "AS", "SA" };
	static const char *const ctry[][3] = { { "DE", "FR", "NL" }, { "US", "CA", "MX" },
					       { "JP", "SG", "IN" }, { "BR", "AR", "CL" } };
	static const char *const exe[] = { "[\"native\"]", "[\"native\",\"docker\"]",
					   "[\"native\",\"docker\",\"vm\"]", "[\"docker\"]" };
	static const char *const feat[] = { "[\"cgroup2\",\"namespaces\"]",
					    "[\"cgroup1\",\"cgroup2\",\"namespaces\",\"netns\"]",
					    "[\"cgroup2\",\"namespaces\",\"netns\",\"kvm\",\"tun\"]" };
	static const char *const tier[] = { "bronze", "silver", "gold" };
	long n;
	if (argc < 2 || (n = atol(argv[1])) < 0) {
		fputs("usage: gen-offers N [SEED]\n", stderr);
		return 64;
	}
	if (argc > 2)
		st = strtoull(argv[2], NULL, 10) * 2654435761ULL + 1;
	for (long i = 0; i < n; i++) {
		unsigned cores = 1u << pick(8), c = pick(4), g = pick(10) < 7 ? 0 : 1 + pick(8);
		unsigned long long ram = (1ULL << 30) << pick(10);
		printf("{\"v\":1,\"cpu\":{\"arch\":\"%s\",\"model\":\"Generic CPU %u\",\"cores\":%u,"
		       "\"threads\":%u,\"mhz\":%u,\"score\":{\"single\":%u,\"multi\":%u}},"
		       "\"ram\":{\"size\":%llu,\"bandwidth\":%llu},"
		       "\"disk\":{\"size\":%llu,\"read\":%u,\"write\":%u},\"gpus\":[",
		       arch[pick(4)], pick(1000), cores, cores * (1 + pick(2)), 1800 + pick(3200),
		       500 + pick(2000), cores * (500 + pick(2000)), ram, ram * (2 + pick(8)),
		       (10ULL << 30) << pick(9), 100000000 + pick(3000000000u),
		       50000000 + pick(2000000000u));
		for (unsigned k = 0; k < g; k++)
			printf("%s{\"vendor\":\"%s\",\"model\":\"GPU %u\",\"vram\":%llu}", k ? "," : "",
			       vend[pick(3)], pick(100), (2ULL << 30) << pick(6));
		printf("],\"executors\":%s,\"features\":%s,\"kernel\":\"%u.%u.0\","
		       "\"location\":{\"continent\":\"%s\",\"country\":\"%s\",\"city\":\"City %u\"},"
		       "\"price\":{\"currency\":\"NTX\",\"cpu_second\":\"%u\",\"ram_gib_second\":\"%u\","
		       "\"disk_gib\":\"%u\",\"gpu_second\":\"%u\"},\"labels\":{\"tier\":\"%s\"}}\n",
		       exe[pick(4)], feat[pick(3)], 4 + pick(3), pick(20), cont[c], ctry[c][pick(3)],
		       pick(500), 1 + pick(40), 1 + pick(10), pick(5), g ? 20 + pick(200) : 0,
		       tier[pick(3)]);
	}
	return fflush(stdout) == 0 ? 0 : 74;
}
