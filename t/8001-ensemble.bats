#!/usr/bin/env bats
# Ensembles: parsing JSON and YAML, the normalized form, every error with
# its path (lib/ensemble, lib/yamldoc through test-tool ensemble).

load lib/common
bats_require_minimum_version 1.5.0

# ens TEXT: parse TEXT as an ensemble; output is the normalized JSON or the
# errors, one per line.
ens() {
	printf '%s\n' "$1" | test-tool ensemble parse "${2:-}"
}

# one allocation around the JSON members given
ONE='{"allocations":{"a":{"command":["true"]}}}'
alloc() {
	printf '{"allocations":{"a":{"command":["true"],%s}}}' "$1"
}

@test "a minimal JSON ensemble gets every default" {
	run ens "$ONE"
	assert_success
	run jq -c . <<<"$output"
	assert_output '{"allocations":{"a":{"children":[],"command":["true"],"depends_on":[],"env":{},"executor":"native","healthcheck":null,"image":null,"inputs":[],"outputs":[],"ports":[],"resources":{"cpu":1,"disk":0,"gpus":0,"ram":268435456},"restart":{"intensity":3,"period_ms":60000,"policy":"never","strategy":"one_for_one"},"retries":0,"state_dir":null,"timeout_ms":0,"type":"task","workdir":null}},"bid_window_ms":500,"contract":null,"deadline_ms":60000,"edges":[],"heartbeat_ms":2000,"max_price":null,"name":"ensemble","nodes":{"a":{"allocations":["a"],"location":null,"peer":null,"redundancy":1}},"rank":null,"version":1,"where":null}'
}

@test "units: sizes become bytes, durations milliseconds, cpu millicores stay exact" {
	run ens "$(alloc '"type":"service","resources":{"cpu":"250m","ram":"1GiB","disk":"8G","gpus":1},"timeout":"5m","restart":{"period":"30s","intensity":5},"healthcheck":{"cmd":"true","interval":"250ms","timeout_ms":100,"retries":2}')"
	assert_success
	run jq -c '.allocations.a | [.resources, .timeout_ms, .restart, .healthcheck]' <<<"$output"
	assert_output '[{"cpu":0.25,"disk":8589934592,"gpus":1,"ram":1073741824},300000,{"intensity":5,"period_ms":30000,"policy":"always","strategy":"one_for_one"},{"cmd":["sh","-c","true"],"interval_ms":250,"retries":2,"timeout_ms":100}]'
}

@test "the default name is the file name's stem; a service restarts always" {
	run ens "$(alloc '"type":"service"')" some/dir/web-app.json
	assert_success
	run jq -c '[.name, .allocations.a.restart.policy]' <<<"$output"
	assert_output '["web-app","always"]'
	run ens "$ONE" -
	assert_success
	run jq -r .name <<<"$output"
	assert_output ensemble
}

@test "normalizing a normalized ensemble gives it back unchanged" {
	doc='{"name":"x","allocations":{"web":{"type":"service","executor":"docker","image":"nginx","ports":[80,{"name":"dns","port":53,"protocol":"udp"}],"env":{"A":"1","N":2},"healthcheck":{"http":"http://127.0.0.1/"},"inputs":[{"url":"https://example.com/a","path":"in/a","sha256":"'$(printf '%064d' 0)'"}],"outputs":[{"path":"out/","url":"s3://b/k"}],"state_dir":"state/","workdir":"w"},"job":{"command":"echo hi","depends_on":"web","retries":2}},"nodes":{"g":{"allocations":["web","job"],"location":{"accept":[{"continent":"EU"}]},"redundancy":2,"peer":null}},"max_price":{"cpu_second":"12"},"where":".cpu.cores >= 1","rank":".cpu.cores","deadline":"2m","bid_window":"1s","contract":"c-1"}'
	run ens "$doc"
	assert_success
	first=$output
	run test-tool ensemble normalize <<<"$first"
	assert_success
	assert_output "$first"
	run jq -c '[.allocations.web.env, .allocations.web.ports, .nodes.g.location, .deadline_ms, .bid_window_ms]' <<<"$first"
	assert_output '[{"A":"1","N":"2"},[{"name":"tcp-80","port":80,"protocol":"tcp"},{"name":"dns","port":53,"protocol":"udp"}],{"accept":[{"continent":"EU"}],"reject":[]},120000,1000]'
}

@test "not a document: JSON syntax, not an object, no allocations" {
	run ens '{"allocations": '
	assert_failure 65
	# one line: libjq's quote of the input is left out
	assert_output 'not JSON: Unfinished JSON term at EOF at line 2, column 0'
	run ens $'{"a":
1,,}'
	assert_failure 65
	assert_output 'not JSON: Expected value before '"'"','"'"' at line 2, column 3'
	run ens '[1,2]'
	assert_failure 65
	assert_output '.: expected an object, not an array'
	run ens '{}'
	assert_failure 65
	assert_output 'allocations: required'
	run ens '{"allocations":{}}'
	assert_failure 65
	assert_output 'allocations: empty: an ensemble runs at least one allocation'
}

@test "every error is reported, each with its path" {
	run ens '{"allocations":{"web":{"executor":"docker","resources":{"ram":"lots"}},"job":{"command":["x"],"resources":{"cpu":-1}}},"deadline":"soon"}'
	assert_failure 65
	assert_output 'allocations.job.resources.cpu: must be more than 0
allocations.web.image: required with the docker executor
allocations.web.resources.ram: not a size
deadline: not a duration'
}

@test "unknown fields, with a did-you-mean when one is close" {
	run ens '{"nmae":"x","allocations":{"a":{"command":["true"],"resouces":{},"zzz":1,"resources":{"memory":"1G"}}}}'
	assert_failure 65
	assert_output 'nmae: unknown field (did you mean "name"?)
allocations.a.resouces: unknown field (did you mean "resources"?)
allocations.a.zzz: unknown field
allocations.a.resources.memory: unknown field'
}

@test "wrong types name what was expected and what was given" {
	run ens "$(alloc '"env":[],"retries":"2","ports":{"a":1},"command":5')"
	assert_failure 65
	assert_output 'allocations.a.command: expected an array of strings, not a number
allocations.a.env: expected an object, not an array
allocations.a.ports: expected an array, not an object
allocations.a.retries: expected an integer, not a string'
	run ens '{"allocations":{"a":"run"}}'
	assert_failure 65
	assert_output 'allocations.a: expected an object, not a string'
}

@test "bad sizes and durations" {
	run ens "$(alloc '"resources":{"ram":"12Q","disk":-1,"gpus":0.5},"timeout":"3 days"')"
	assert_failure 65
	assert_output 'allocations.a.resources.ram: not a size
allocations.a.resources.disk: not a size
allocations.a.resources.gpus: expected an integer, not 0.5
allocations.a.timeout: not a duration'
	run ens "$(alloc '"resources":{"cpu":0.0001,"ram":0}')"
	assert_failure 65
	assert_output 'allocations.a.resources.cpu: at most three decimals (a thousandth of a core)
allocations.a.resources.ram: must be at least 1 bytes'
	run ens "$(alloc '"ports":[80,{"port":80}],"inputs":[{"url":"https://h/x"}]')"
	assert_failure 65
	assert_output 'allocations.a.inputs[0].path: required
allocations.a.ports[1].name: "tcp-80" is used twice'
	run ens "$(alloc '"timeout":"1s","timeout_ms":5')"
	assert_failure 65
	assert_output 'allocations.a.timeout: give timeout or timeout_ms, not both'
	# the providers' heartbeat: 100ms to 10m
	run ens '{"allocations":{"a":{"command":["true"]}},"heartbeat":"50ms"}'
	assert_failure 65
	assert_output 'heartbeat: must be at least 100ms'
	run ens '{"allocations":{"a":{"command":["true"]}},"heartbeat_ms":600001}'
	assert_failure 65
	assert_output 'heartbeat_ms: must be at most 10m'
	run ens '{"allocations":{"a":{"command":["true"]}},"heartbeat":"500ms"}'
	assert_success
	assert_equal "$(jq -r .heartbeat_ms <<<"$output")" 500
}

@test "unknown type, executor, policy, strategy, protocol" {
	run ens "$(alloc '"type":"daemon","executor":"k8s","restart":{"policy":"sometimes","strategy":"one_for_some"},"ports":[{"port":1,"protocol":"sctp"}]')"
	assert_failure 65
	assert_output 'allocations.a.type: unknown type "daemon" (known: service, task)
allocations.a.executor: unknown executor "k8s" (known: native, docker, vm)
allocations.a.ports[0].protocol: unknown protocol "sctp" (known: tcp, udp)
allocations.a.restart.policy: unknown restart policy "sometimes" (known: never, on-failure, always)
allocations.a.restart.strategy: unknown restart strategy "one_for_some" (known: one_for_one, one_for_all, rest_for_one)'
}

@test "native needs a command, docker and vm an image; native takes no image" {
	run ens '{"allocations":{"n":{},"d":{"executor":"docker"},"v":{"executor":"vm","command":["x"]},"i":{"command":["x"],"image":"debian:12"}}}'
	assert_failure 65
	assert_output 'allocations.d.image: required with the docker executor
allocations.i.image: the native executor runs no image (set executor to docker or vm)
allocations.n.command: required with the native executor
allocations.v.image: required with the vm executor'
}

@test "depends_on and children must name allocations of this ensemble" {
	run ens '{"allocations":{"web":{"command":["x"],"depends_on":["db","web"]},"db2":{"command":["x"],"children":["nope"]}}}'
	assert_failure 65
	assert_output 'allocations.web.depends_on[0]: no allocation named "db" (did you mean "db2"?)
allocations.web.depends_on[1]: names the allocation itself
allocations.db2.children[0]: no allocation named "nope"'
}

@test "cycles in depends_on and in children are named" {
	run ens '{"allocations":{"a":{"command":["x"],"depends_on":["b"]},"b":{"command":["x"],"depends_on":["c"]},"c":{"command":["x"],"depends_on":["a"]},"d":{"command":["x"],"depends_on":["a"]}}}'
	assert_failure 65
	assert_output 'allocations.a.depends_on: cycle: a -> b -> c -> a'
	run ens '{"allocations":{"p":{"command":["x"],"children":["q"]},"q":{"command":["x"],"children":["p"]}}}'
	assert_failure 65
	assert_output 'allocations.p.children: cycle: p -> q -> p'
	run ens '{"allocations":{"p":{"command":["x"],"children":["c"]},"q":{"command":["x"],"children":["c"]},"c":{"command":["x"]}}}'
	assert_failure 65
	assert_output 'allocations.q.children[0]: "c" is already a child of "p" (an allocation has one parent)'
}

@test "node groups: each allocation in exactly one; edges name groups" {
	run ens '{"allocations":{"a":{"command":["x"]},"b":{"command":["x"]},"c":{"command":["x"]}},"nodes":{"g1":{"allocations":["a","b"]},"g2":{"allocations":["b","zz"]}},"edges":[{"from":"g1","to":"g3","max_rtt":"5ms"},{"from":"g1","to":"g1","max_rtt":1},{"from":"g1","to":"g2"}]}'
	assert_failure 65
	assert_output 'nodes.g2.allocations[0]: "b" is already in node group "g1" (an allocation is in one group)
nodes.g2.allocations[1]: no allocation named "zz"
allocations.c: in no node group (list it in one of nodes)
edges[0].to: no node group named "g3"
edges[1]: from and to are the same group
edges[2]: constrains nothing (give max_rtt or min_bandwidth)'
}

@test "a pin that is not a did:key, bad location, redundancy below one" {
	run ens '{"allocations":{"a":{"command":["x"]}},"nodes":{"g":{"allocations":["a"],"peer":"12D3KooWabc","location":{"accept":[],"reject":[{"planet":"mars"}]},"redundancy":0}}}'
	assert_failure 65
	assert_output 'nodes.g.peer: not a did:key ("12D3KooWabc")
nodes.g.location.accept: empty: no location would be accepted (leave accept out to accept any)
nodes.g.location.reject[0].planet: unknown field
nodes.g.redundancy: must be at least 1'
	did=$(nunet-node --home "$BATS_TEST_TMPDIR/n" init | head -1)
	[[ $did == did:key:z* ]]
	run ens '{"allocations":{"a":{"command":["x"]}},"nodes":{"g":{"allocations":["a"],"peer":"'"$did"'"}}}'
	assert_success
	run jq -r .nodes.g.peer <<<"$output"
	assert_output "$did"
	run ens '{"allocations":{"a":{"command":["x"]}},"nodes":{"g":{"allocations":["a"],"peer":"'"${did}x"'"}}}'
	assert_failure 65
	assert_output "nodes.g.peer: not a did:key (\"${did}x\")"
}

@test "where and rank must compile as jq; prices are integer strings" {
	run ens '{"allocations":{"a":{"command":["x"]}},"where":".cpu.cores >","rank":"[","max_price":{"cpu_second":12,"ram_gib_second":"1.5","disk_gib":"7","gpu_secnd":"1"}}'
	assert_failure 65
	assert_line --index 0 --regexp '^where: does not compile: jq: error: syntax error'
	assert_line --index 1 --regexp '^rank: does not compile: jq: error: syntax error'
	assert_line --index 2 'max_price.gpu_secnd: unknown field (did you mean "gpu_second"?)'
	assert_line --index 3 'max_price.cpu_second: expected an integer string such as "12" (money is never a number)'
	assert_line --index 4 'max_price.ram_gib_second: expected an integer string of at most 18 digits'
	assert_equal "${#lines[@]}" 5
}

@test "zero, negative and nonsense values where they make no sense" {
	run ens '{"version":2,"name":"Web App","allocations":{"A":{"command":["x"]},"a":{"command":[],"ports":[0],"healthcheck":{"retries":0},"retries":-1}},"deadline_ms":0,"bid_window":"2m"}'
	assert_failure 65
	assert_output 'version: unsupported version 2 (this program reads version 1)
name: "Web App" is not a valid name (lowercase letters, digits, '"'"'-'"'"' and '"'"'_'"'"', at most 63, starting with a letter or digit)
allocations.A: not a valid allocation name (lowercase letters, digits, '"'"'-'"'"' and '"'"'_'"'"', at most 63, starting with a letter or digit)
allocations.a.command: empty
allocations.a.ports[0].port: must be at least 1
allocations.a.healthcheck: give exactly one of cmd and http
allocations.a.healthcheck.retries: must be at least 1
allocations.a.retries: must be at least 0
deadline_ms: must be at least 1
bid_window: must be shorter than the deadline (60000ms)'
}

@test "paths stay inside the allocation directory; URLs have a scheme we fetch" {
	run ens "$(alloc '"workdir":"../x","state_dir":"/var/lib","inputs":[{"url":"ftp://h/f","path":"a/../../b","sha256":"XY"},{"path":"p"}],"outputs":[{"path":"o","url":"gopher://x"}]')"
	assert_failure 65
	assert_output "allocations.a.workdir: must not leave the allocation directory ('..')
allocations.a.inputs[0].url: unsupported URL \"ftp://h/f\" (file://, http://, https://, s3://, git+https://, git+file://)
allocations.a.inputs[0].path: must not leave the allocation directory ('..')
allocations.a.inputs[0].sha256: expected 64 lowercase hex digits
allocations.a.inputs[1].url: required
allocations.a.outputs[0].url: unsupported URL \"gopher://x\" (file://, http://, https://, s3://, git+https://, git+file://)
allocations.a.state_dir: must be relative to the allocation directory, not '/var/lib'"
}

@test "a node never trusts a received document: normalize checks it all" {
	run test-tool ensemble normalize <<<'{"allocations":{"a":{"command":["x"],"resources":{"ram":"1Q"}}},"nodes":{"a":{"allocations":["a"],"peer":"x"}}}'
	assert_failure 65
	assert_output 'allocations.a.resources.ram: not a size
nodes.a.peer: not a did:key ("x")'
}

@test "errors are capped, the last one says so" {
	doc=$(jq -nc '{allocations: ([range(300)] | map({key: "a\(.)", value: {}}) | from_entries)}')
	run ens "$doc"
	assert_failure 65
	assert_equal "${#lines[@]}" 200
	assert_line --index 199 --regexp ': too many errors, the rest are not reported$'
}

@test "YAML: plain scalars are typed (core schema), quoted ones stay strings" {
	run test-tool ensemble yaml <<'Y'
a: 1
b: "1"
c: true
d: ~
e: 0x10
f: 1.5
g: 12345678901234567890
h: yes
i: !!str 5
j: [1, two]
k: -3
l: 1e3
m: .inf
n:
o: 'null'
Y
	assert_success
	assert_output '{"a":1,"b":"1","c":true,"d":null,"e":16,"f":1.5,"g":"12345678901234567890","h":"yes","i":"5","j":[1,"two"],"k":-3,"l":1000,"m":".inf","n":null,"o":"null"}'
}

@test "YAML: an ensemble reads the same as its JSON" {
	yaml='name: web-app
allocations:
  web:
    type: service
    executor: docker
    image: "nginx:1.25"
    resources: {cpu: 0.5, ram: 512MiB}
    env:
      PORT: 8080
      DEBUG: "false"
    ports: [8080]
    healthcheck:
      http: http://127.0.0.1:8080/
      interval: 5s
  job:
    command: [sh, -c, "echo hi"]
    depends_on: [web]
edges:
  - {from: web, to: job, max_rtt: 50ms}
'
	json='{"name":"web-app","allocations":{"web":{"type":"service","executor":"docker","image":"nginx:1.25","resources":{"cpu":0.5,"ram":"512MiB"},"env":{"PORT":"8080","DEBUG":"false"},"ports":[8080],"healthcheck":{"http":"http://127.0.0.1:8080/","interval":"5s"}},"job":{"command":["sh","-c","echo hi"],"depends_on":["web"]}},"edges":[{"from":"web","to":"job","max_rtt_ms":50}]}'
	run ens "$yaml"
	assert_success
	y=$output
	run ens "$json"
	assert_success
	assert_equal "$y" "$output"
	run jq -c '.allocations.web.env' <<<"$y"
	assert_output '{"DEBUG":"false","PORT":"8080"}'
}

@test "YAML: flow style that is not JSON is read as YAML" {
	run ens '{allocations: {a: {command: [true]}}}'
	assert_failure 65
	assert_output 'allocations.a.command[0]: expected a string, not a boolean'
	run ens '{allocations: {a: {command: ["true"]}}}'
	assert_success
}

@test "YAML: aliases, several documents, duplicate keys, deep nesting are refused" {
	run ens $'allocations:\n  a: &x {command: [x]}\n  b: *x\n'
	assert_failure 65
	assert_output 'line 3 column 6: aliases (*name) are not supported'
	run ens $'allocations: {a: {command: [x]}}\n---\nallocations: {b: {command: [x]}}\n'
	assert_failure 65
	assert_output 'line 2 column 1: more than one YAML document (give one per file)'
	run ens $'allocations: {a: {command: [x]}}\nallocations: {}\n'
	assert_failure 65
	assert_output "line 2 column 1: duplicate key 'allocations'"
	run ens "a: $(printf '%.0s[' {1..70})"
	assert_failure 65
	assert_output 'line 1 column 68: nested deeper than 64 levels'
	# a billion laughs needs aliases: refused at the first one
	run ens $'a: &a ["lol","lol"]\nb: &b [*a,*a]\nc: [*b,*b]\n'
	assert_failure 65
	assert_output 'line 2 column 8: aliases (*name) are not supported'
}

@test "YAML: syntax errors say where" {
	run ens $'allocations:\n  a: {command: [x]\n  b: 1\n'
	assert_failure 65
	assert_output --regexp '^line [0-9]+ column [0-9]+: '
	run ens $'allocations:\n\ta: 1\n'
	assert_failure 65
	assert_output --regexp '^line 2 column 1: found character that cannot start any token'
	run ens ''
	assert_failure 65
	assert_output '.: expected an object, not null'
}

@test "too large a text is refused before parsing" {
	head -c 5000000 /dev/zero | tr '\0' ' ' >"$BATS_TEST_TMPDIR/big"
	run test-tool ensemble parse <"$BATS_TEST_TMPDIR/big"
	assert_failure 65
	assert_output '.: larger than 4194304 bytes'
}

# requirements of a group, matched by nunet-match against the example offers
match_group() {
	local r
	r=$(test-tool ensemble reqs "$2" <<<"$1") || { echo "$r"; return 1; }
	cat "$NUNET_SRC"/share/nunet/capability/*.json | jq -c . |
		nunet-match "$r" | jq -r '.offer.cpu.model'
}

@test "group requirements: summed resources, executors, location, price, where/rank" {
	doc='{"allocations":{"api":{"executor":"docker","image":"x","resources":{"cpu":0.25,"ram":"1G","disk":"1G"}},"side":{"command":["x"],"resources":{"cpu":0.5,"ram":"512M","gpus":1}},"edge":{"command":["x"],"resources":{"cpu":1}}},"nodes":{"big":{"allocations":["api","side"]},"eu":{"allocations":["edge"],"location":{"accept":[{"continent":"EU"}]}}},"max_price":{"cpu_second":"20"},"where":".ram.size > 0","rank":".cpu.cores"}'
	run test-tool ensemble reqs big <<<"$doc"
	assert_success
	assert_output '{"cpu":{"millicores":750},"disk":{"size":1073741824},"gpus":{"count":1},"price":{"max":{"cpu_second":"20"}},"ram":{"size":1610612736},"rank":".cpu.cores","v":1,"where":"(.ram.size > 0) and ([\"docker\",\"native\"] - (.executors // []) | length == 0)"}'
	run test-tool ensemble reqs eu <<<"$doc"
	assert_success
	assert_output '{"cpu":{"cores":1},"executors":["native"],"location":{"accept":[{"continent":"EU"}]},"price":{"max":{"cpu_second":"20"}},"ram":{"size":268435456},"rank":".cpu.cores","v":1,"where":".ram.size > 0"}'
	run test-tool ensemble reqs nope <<<"$doc"
	assert_failure 65
	assert_output 'error: no node group named "nope"'
}

@test "group requirements go through nunet-match: a group needing two executors gets nodes with both" {
	doc='{"allocations":{"api":{"executor":"docker","image":"x"},"side":{"command":["x"]},"solo":{"command":["x"]},"eu":{"command":["x"]}},"nodes":{"both":{"allocations":["api","side"]},"solo":{"allocations":["solo"]},"eu":{"allocations":["eu"],"location":{"accept":[{"continent":"EU"}],"reject":[{"country":"NL"}]}}}}'
	# arm-edge (Cortex-A76) has only native
	run match_group "$doc" both
	assert_success
	assert_output 'AMD EPYC 7B13
AMD Ryzen 9 7950X'
	run match_group "$doc" solo
	assert_success
	assert_output 'Cortex-A76
AMD EPYC 7B13
AMD Ryzen 9 7950X'
	run match_group "$doc" eu
	assert_success
	assert_output 'AMD EPYC 7B13'
}

@test "group requirements: a fractional sum of cores goes to the matcher as exact millicores" {
	doc='{"allocations":{"a":{"command":["x"],"resources":{"cpu":0.1}},"b":{"command":["x"],"resources":{"cpu":0.907}}},"nodes":{"g":{"allocations":["a","b"]}}}'
	run test-tool ensemble reqs g <<<"$doc"
	assert_success
	assert_output '{"cpu":{"millicores":1007},"executors":["native"],"ram":{"size":536870912},"v":1}'
	run match_group "$doc" g
	assert_success
	assert_output 'Cortex-A76
AMD EPYC 7B13
AMD Ryzen 9 7950X'
}
