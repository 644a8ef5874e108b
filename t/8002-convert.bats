#!/usr/bin/env bats
# nunet-run validate and convert: ensembles from files, Nomad jobs and
# Kubernetes manifests into ensembles, the examples in share/nunet/examples.

load lib/common
bats_require_minimum_version 1.5.0

EX="$NUNET_SRC/share/nunet/examples"

setup() {
	common_setup
	cd "$BATS_TEST_TMPDIR"
}

@test "validate: every example ensemble is valid" {
	for f in "$EX"/*.yaml "$EX"/*.json; do
		case $f in */nomad.json|*/k8s-*) continue ;; esac
		run --separate-stderr nunet-run validate "$f"
		assert_success
		assert_output --regexp '^ok: [0-9]+ allocations? in [0-9]+ node groups?$'
		assert_equal "$stderr" ''
	done
	run nunet-run validate "$EX/web.yaml"
	assert_output 'ok: 2 allocations in 2 node groups'
}

@test "validate --json prints the normalized ensemble, which validates again" {
	run --separate-stderr nunet-run validate --json "$EX/web.yaml"
	assert_success
	printf '%s\n' "$output" >n.json
	run jq -c '[.name, .allocations.web.healthcheck, .edges, .deadline_ms, .allocations.probe.depends_on]' n.json
	assert_output '["web",{"http":"http://127.0.0.1:8080/","interval_ms":2000,"retries":3,"timeout_ms":1000},[{"from":"checker","max_rtt_ms":50,"min_bandwidth":0,"to":"front"}],30000,["web"]]'
	run nunet-run validate --json n.json
	assert_success
	assert_output "$(cat n.json)"
	run nunet-run validate --json - <n.json
	assert_success
	assert_output "$(cat n.json)"
}

@test "validate: every error, one per line, FILE: PATH: MESSAGE, exit 65" {
	cat >bad.yaml <<'Y'
allocations:
  web:
    type: service
    executor: docker
    resources: {ram: lots}
  job:
    command: [x]
    depends_on: [db]
Y
	run --separate-stderr nunet-run validate bad.yaml
	assert_failure 65
	assert_output ''
	assert_equal "$stderr" 'bad.yaml: allocations.web.image: required with the docker executor
bad.yaml: allocations.web.resources.ram: not a size
bad.yaml: allocations.job.depends_on[0]: no allocation named "db"'
	run --separate-stderr nunet-run validate - <bad.yaml
	assert_failure 65
	assert_equal "${stderr_lines[0]}" 'stdin: allocations.web.image: required with the docker executor'
}

@test "validate: usage, unreadable files, foreign documents" {
	run --separate-stderr nunet-run validate
	assert_failure 64
	assert_equal "${stderr_lines[0]}" 'usage: nunet-run [--executor E] [--cpu N] [--memory SIZE] [--image IMG] [--restart POLICY]'
	run --separate-stderr nunet-run validate --bogus x
	assert_failure 64
	run --separate-stderr nunet-run validate nonexistent.yaml
	assert_failure 74
	assert_equal "$stderr" "nunet-run: error: cannot open 'nonexistent.yaml': No such file or directory"
	run --separate-stderr nunet-run validate "$EX/k8s-job.yaml"
	assert_failure 65
	assert_equal "$stderr" "$EX/k8s-job.yaml: .: a Kubernetes manifest, not an ensemble (nunet-run convert --from kubernetes makes one of it)"
	run --separate-stderr nunet-run validate "$EX/nomad.json"
	assert_failure 65
	assert_equal "$stderr" "$EX/nomad.json: .: a Nomad job, not an ensemble (nunet-run convert --from nomad makes one of it)"
	run --separate-stderr bash -c 'nunet-run validate "$1" >/dev/full' _ "$EX/web.yaml"
	assert_failure 74
	assert_equal "$stderr" 'nunet-run: error: cannot write: No space left on device'
	head -c 4194305 /dev/zero | tr '\0' ' ' >big.yaml
	run --separate-stderr nunet-run validate big.yaml
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: 'big.yaml' is larger than 4194304 bytes"
}

@test "convert --from nomad: the example job, and what it could not convert" {
	run --separate-stderr nunet-run convert --from nomad "$EX/nomad.json"
	assert_success
	printf '%s\n' "$output" >shop.json
	assert_equal "$stderr" 'convert: Job.TaskGroups[0].RestartPolicy.Delay: not converted: restarts are not delayed
convert: Job.TaskGroups[0].Services[0].Checks[1]: not converted: an allocation has one health check (the first is kept)
convert: Job.TaskGroups[0].Tasks[1].Templates: not converted: templates are not supported
convert: Job.TaskGroups[1].Tasks[0].Volumes: not converted: volumes are not supported
convert: Job.Datacenters: not converted: there are no datacenters (use a node group'"'"'s location)'
	# valid as printed
	run nunet-run validate shop.json
	assert_success
	assert_output 'ok: 3 allocations in 2 node groups'
	run jq -c '.nodes | map_values([.allocations, .redundancy])' shop.json
	assert_output '{"cache":[["redis"],1],"frontend":[["migrate","server"],2]}'
	run jq -c '.allocations.server | [.executor, .image, .command, .resources.cpu, .resources.ram, .env, .ports, .healthcheck, .restart, .depends_on, .inputs]' shop.json
	assert_output '["docker","python:3.12-slim",["python3","-m","http.server","8080"],0.5,268435456,{"SHOP_MODE":"production"},[{"name":"http","port":8080,"protocol":"tcp"}],{"http":"http://127.0.0.1:8080/health","interval_ms":10000,"retries":3,"timeout_ms":2000},{"intensity":2,"period_ms":1800000,"policy":"always","strategy":"one_for_one"},["migrate"],[{"path":"local/catalog.json","url":"https://example.com/catalog.json"}]]'
	run jq -c '.allocations.migrate | [.executor, .type, .command, .resources.cpu, .ports, .healthcheck]' shop.json
	assert_output '["native","task",["/bin/sh","-c","echo migrating"],0.1,[],null]'
	run jq -c '[.allocations.redis.resources.disk, .where]' shop.json
	assert_output '[314572800,".cpu.arch == \"x86_64\""]'
}

@test "convert --from nomad: batch jobs, the bare job, unsupported drivers, constraints" {
	cat >job.json <<'J'
{"ID":"Nightly Report","Type":"batch","Constraints":[{"LTarget":"${meta.rack}","RTarget":"r1","Operand":"="}],
 "TaskGroups":[{"Name":"g","ReschedulePolicy":{"Attempts":2},"RestartPolicy":{"Attempts":0},
  "Tasks":[{"Name":"report","Driver":"raw_exec","Config":{"command":"date"},"Resources":{"Cores":2,"MemoryMB":100,"MemoryMaxMB":200}},
           {"Name":"jvm","Driver":"java","Config":{"jar_path":"x.jar"}}]}]}
J
	run --separate-stderr nunet-run convert --from nomad job.json
	assert_success
	assert_equal "$stderr" 'convert: Job.Constraints[0]: not converted: constraint ${meta.rack} = r1 has no counterpart in a capability document
convert: Job.TaskGroups[0].Tasks[0].Resources.MemoryMaxMB: not converted: memory is reserved, not oversubscribed (MemoryMB is kept)
convert: Job.TaskGroups[0].Tasks[1].Driver: not converted: driver '"'"'java'"'"' (exec, raw_exec, docker and podman are converted)'
	run jq -c '[.name, .allocations.report.type, .allocations.report.resources.cpu, .allocations.report.resources.ram, .allocations.report.restart.policy, .allocations.report.retries]' <<<"$output"
	assert_output '["nightly-report","task",2,104857600,"never",2]'
}

@test "convert --from nomad: not a Nomad job, or nothing convertible, is exit 65" {
	echo '{"job":{"x":{}}}' >hcl.json
	run --separate-stderr nunet-run convert --from nomad hcl.json
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: hcl.json: not a Nomad job: expected {\"Job\":{...,\"TaskGroups\":[...]}}, the API form 'nomad job run -output' prints"
	echo 'job "x" {}' >x.hcl
	run --separate-stderr nunet-run convert --from nomad x.hcl
	assert_failure 65
	assert_output ''
	assert_equal "${stderr_lines[0]%%:*}" 'nunet-run'
	echo '{"Job":{"TaskGroups":[{"Tasks":[{"Driver":"java"}]}]}}' >java.json
	run --separate-stderr nunet-run convert --from nomad java.json
	assert_failure 65
	assert_equal "${stderr_lines[-1]}" 'nunet-run: error: java.json: nothing to convert: no task with a supported driver'
	run --separate-stderr nunet-run convert --from slurm java.json
	assert_failure 64
	assert_equal "${stderr_lines[0]}" "nunet-run: error: --from: expected nomad or kubernetes, not 'slurm'"
	run --separate-stderr nunet-run convert java.json
	assert_failure 64
}

@test "convert --from kubernetes: the example Job" {
	run --separate-stderr nunet-run convert --from kubernetes "$EX/k8s-job.yaml"
	assert_success
	printf '%s\n' "$output" >pi.json
	assert_equal "$stderr" 'convert: spec.template.spec.containers[0].resources.limits.cpu: not converted: above the request: the allocation reserves its request
convert: spec.template.spec.containers[0].resources.limits.memory: not converted: above the request: the allocation reserves its request
convert: spec.template.spec.containers[0].env[1]: not converted: valueFrom (secrets, config maps, fields) is not supported
convert: spec.template.spec.containers[0].volumeMounts: not converted: volumes are not supported
convert: spec.template.spec.volumes: not converted: volumes are not supported'
	run nunet-run validate pi.json
	assert_success
	assert_output 'ok: 2 allocations in 1 node group'
	run jq -c '[.name, .nodes]' pi.json
	assert_output '["pi-digits",{"pi-digits":{"allocations":["fetch","pi"],"location":null,"peer":null,"redundancy":1}}]'
	run jq -c '.allocations.pi | [.type, .executor, .image, .command, .resources.cpu, .resources.ram, .env, .restart.policy, .restart.intensity, .timeout_ms, .depends_on]' pi.json
	assert_output '["task","docker","perl:5.34",["perl","-Mbignum=bpi","-wle","print bpi(2000)"],0.5,268435456,{"DIGITS":"2000"},"on-failure",3,600000,["fetch"]]'
}

@test "convert --from kubernetes: a Deployment in JSON, probes, ports, replicas" {
	cat >dep.json <<'J'
{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"Web_Front"},
 "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"strategy":{"type":"RollingUpdate"},
  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"nodeSelector":{"disk":"ssd"},"containers":[
   {"name":"nginx","image":"nginx:1.25","ports":[{"name":"http","containerPort":80},{"containerPort":9113,"protocol":"SCTP"}],
    "args":["-g","daemon off;"],
    "resources":{"limits":{"cpu":"2","memory":"1Gi","nvidia.com/gpu":1},"requests":{"ephemeral-storage":"2G"}},
    "livenessProbe":{"httpGet":{"path":"healthz","port":"http"},"periodSeconds":5,"failureThreshold":4,"initialDelaySeconds":3}},
   {"name":"sidecar","image":"busybox","command":["sh","-c","sleep 1d"],"livenessProbe":{"exec":{"command":["true"]}}}]}}}}
J
	run --separate-stderr nunet-run convert --from kubernetes dep.json
	assert_success
	printf '%s\n' "$output" >dep.ens
	assert_equal "$stderr" 'convert: spec.template.spec.containers[0].args: not converted: args without command need the image'"'"'s entrypoint, which an ensemble replaces (give command)
convert: spec.template.spec.containers[0].ports[1]: not converted: protocol SCTP (tcp and udp are)
convert: spec.template.spec.containers[0].livenessProbe.initialDelaySeconds: not converted: checks start with the allocation
convert: spec.template.spec.nodeSelector: not converted: node labels are not capabilities (use where)
convert: spec.strategy: not converted: rolling updates are not supported'
	run jq -c '[.name, .nodes["web_front"].redundancy, .allocations.nginx.type, .allocations.nginx.command, .allocations.nginx.resources, .allocations.nginx.ports, .allocations.nginx.healthcheck, .allocations.sidecar.healthcheck.cmd, .allocations.nginx.restart.policy]' dep.ens
	assert_output '["web_front",3,"service",null,{"cpu":2,"disk":2000000000,"gpus":1,"ram":1073741824},[{"name":"http","port":80,"protocol":"tcp"}],{"http":"http://127.0.0.1:80/healthz","interval_ms":5000,"retries":4,"timeout_ms":5000},["true"],"always"]'
}

@test "convert --from kubernetes: a Pod in YAML; other kinds and non-manifests are exit 65" {
	cat >pod.yaml <<'Y'
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: alpine:3.19
      command: [echo, hello]
      resources: {requests: {cpu: 250m, memory: 64Mi}}
Y
	run --separate-stderr nunet-run convert --from kubernetes pod.yaml
	assert_success
	assert_equal "$stderr" ''
	run jq -c '.allocations.main | [.type, .restart.policy, .resources.cpu, .resources.ram]' <<<"$output"
	assert_output '["task","never",0.25,67108864]'
	printf 'apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\n' >ss.yaml
	run --separate-stderr nunet-run convert --from kubernetes ss.yaml
	assert_failure 65
	assert_equal "$stderr" 'nunet-run: error: ss.yaml: not a Kubernetes Pod, Job or Deployment (kind StatefulSet)'
	printf 'a: [\n' >broken.yaml
	run --separate-stderr nunet-run convert --from kubernetes broken.yaml
	assert_failure 65
	assert_equal "$stderr" 'nunet-run: error: broken.yaml: line 2 column 1: did not find expected node content while parsing a flow node'
	printf 'kind: Pod\n---\nkind: Pod\n' >two.yaml
	run --separate-stderr nunet-run convert --from kubernetes two.yaml
	assert_failure 65
	assert_equal "$stderr" 'nunet-run: error: two.yaml: line 2 column 1: more than one YAML document (give one per file)'
	printf 'kind: Pod\nspec: {}\n' >empty.yaml
	run --separate-stderr nunet-run convert --from kubernetes empty.yaml
	assert_failure 65
	assert_equal "$stderr" 'nunet-run: error: empty.yaml: spec.containers: missing: not a Pod manifest'
}

@test "convert: what converts but is not a valid ensemble is reported like validate" {
	cat >bad.yaml <<'Y'
kind: Pod
metadata: {name: p}
spec:
  containers:
    - {name: a, command: [x]}
Y
	run --separate-stderr nunet-run convert --from kubernetes bad.yaml
	assert_failure 65
	assert_output ''
	assert_equal "$stderr" 'bad.yaml: allocations.a.image: required with the docker executor'
}

@test "nunet-ensemble(5) and nunet-run(1): the examples, as written" {
	cd "$NUNET_SRC"
	run nunet-run validate share/nunet/examples/web.yaml
	assert_success
	assert_output 'ok: 2 allocations in 2 node groups'
	run bash -c "nunet-run validate --json share/nunet/examples/web.yaml |
    jq -c '.allocations.web.healthcheck'"
	assert_output '{"http":"http://127.0.0.1:8080/","interval_ms":2000,"retries":3,"timeout_ms":1000}'
	run bash -c "printf 'allocations:\n  web: {executor: docker, resources: {ram: lots}}\n' |
    nunet-run validate - 2>&1; echo \$?"
	assert_output 'stdin: allocations.web.image: required with the docker executor
stdin: allocations.web.resources.ram: not a size
65'
	run bash -c "nunet-run convert --from kubernetes share/nunet/examples/k8s-job.yaml \
    2>/dev/null | jq -c '.allocations.pi.resources'"
	assert_output '{"cpu":0.5,"disk":0,"gpus":0,"ram":268435456}'
	run bash -c "nunet-run convert --from nomad share/nunet/examples/nomad.json 2>&1 >/dev/null | head -1"
	assert_output 'convert: Job.TaskGroups[0].RestartPolicy.Delay: not converted: restarts are not delayed'
	run bash -c "nunet-run convert --from nomad share/nunet/examples/nomad.json 2>/dev/null |
    jq -c '.nodes.frontend'"
	assert_output '{"allocations":["migrate","server"],"location":null,"peer":null,"redundancy":2}'
}
