#!/usr/bin/env bash
# `make demo`: the operator on the local cluster with the samples applied.
#   hack/demo.sh up     install CRDs, start the operator in the background, apply samples, show them
#   hack/demo.sh down   stop the demo operator and the demo broker
# The service catalog samples name an Open Service Broker at 127.0.0.1:8390: the demo runs
# hack/osb's openbroker there, its state in .demo/broker.json.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${CLUSTER_NAME:-playbook-operator}"
state=.demo
mkdir -p "$state"
eval "$(python3 hack/cluster.py --name "$name" env)"

stop_operator() {
  if [[ -f $state/operator.pid ]] && kill -0 "$(cat $state/operator.pid)" 2>/dev/null; then
    kill "$(cat $state/operator.pid)" && echo "demo operator stopped"
  fi
  rm -f "$state/operator.pid"
}

stop_broker() {
  if [[ -f $state/broker.pid ]] && kill -0 "$(cat $state/broker.pid)" 2>/dev/null; then
    kill "$(cat $state/broker.pid)" && echo "demo broker stopped"
  fi
  rm -f "$state/broker.pid"
}

wait_until() {  # wait_until SECONDS DESCRIPTION CMD...
  local deadline=$(( $(date +%s) + $1 )) what="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) > deadline )); then echo "timed out waiting for $what" >&2; return 1; fi
    sleep 0.5
  done
}

case "${1:-up}" in
  up)
    kubectl apply -k deploy/crd
    kubectl wait --for condition=Established --timeout=60s crd --all
    stop_operator
    .venv/bin/playbook-operator run --watches-file watches.yaml \
      --metrics-bind-address 127.0.0.1:8080 --health-probe-bind-address 127.0.0.1:6789 \
      >"$state/operator.log" 2>&1 &
    echo $! >"$state/operator.pid"
    echo "operator running (pid $(cat $state/operator.pid)), log: $state/operator.log"
    stop_broker
    .venv/bin/python -m hack.osb.openbroker --port 8390 --state "$state/broker.json" \
      --username demo --password demo-password >"$state/broker.out" 2>"$state/broker.log" &
    echo $! >"$state/broker.pid"
    wait_until 30 "the demo broker" grep -q listening "$state/broker.out"
    echo "Open Service Broker running at http://127.0.0.1:8390 (pid $(cat $state/broker.pid)), log: $state/broker.log"
    kubectl apply -f deploy/samples/
    wait_until 90 "the sample ConfigMap" kubectl get configmap hello-example
    kubectl wait --for=jsonpath='{.status.conditions[?(@.type=="Successful")].status}'=True \
      --timeout=60s example/hello >/dev/null
    echo
    echo "--- custom resources"
    kubectl get examples
    echo
    echo "--- what the operator made"
    kubectl get configmap hello-example -o yaml | sed -n '/^data:/,/^kind:/p'
    echo
    echo "--- PodSet web: 3 pods from a template (roles/podset)"
    wait_until 120 "3 Ready pods of podset/web" \
      bash -c '[[ "$(kubectl get podset web -o jsonpath={.status.readyReplicas})" == 3 ]]'
    kubectl get podset web
    kubectl get pods -l app=web
    echo
    echo "--- kubectl scale podset/web --replicas=5 (the scale subresource)"
    kubectl scale podset/web --replicas=5
    wait_until 120 "5 Ready pods of podset/web" \
      bash -c '[[ "$(kubectl get podset web -o jsonpath={.status.readyReplicas})" == 5 ]]'
    kubectl get podset web
    kubectl get pods -l app=web
    echo
    echo "--- ServiceBindings: the sample Secret projected into PodSet web and Deployment shop (roles/servicebinding)"
    for sb in web-db shop-db; do
      kubectl wait --for=jsonpath='{.status.conditions[?(@.type=="Ready")].status}'=True \
        --timeout=120s "servicebinding/$sb" >/dev/null
    done
    kubectl get servicebindings
    for w in podset/web deployment/shop; do
      echo "$w:"
      kubectl get "$w" -o jsonpath='{range .spec.template.spec.volumes[*]}{"  volume "}{.name}{" <- Secret "}{.projected.sources[0].secret.name}{"\n"}{end}{range .spec.template.spec.containers[*].volumeMounts[*]}{"  mount  "}{.mountPath}{"\n"}{end}{range .spec.template.spec.containers[*].env[*]}{"  env    "}{.name}{"="}{.value}{.valueFrom.secretKeyRef.name}{" "}{.valueFrom.secretKeyRef.key}{.valueFrom.fieldRef.fieldPath}{"\n"}{end}'
    done
    echo
    echo "--- The binding changed podset/web's template, so the PodSet rolls it out (maxSurge/maxUnavailable 25%)"
    .venv/bin/playbook-operator rollout status ps/web --timeout 3m
    .venv/bin/playbook-operator rollout history ps/web
    kubectl get podset web
    echo
    echo "--- Service catalog: the broker's catalog, a database provisioned and bound (roles/servicebroker,"
    echo "    roles/serviceinstance, roles/servicecredential), its Secret projected into PodSet orders"
    kubectl wait --for=jsonpath='{.status.conditions[?(@.type=="Ready")].status}'=True \
      --timeout=120s clusterservicebroker/playbook-broker >/dev/null
    kubectl get clusterservicebrokers,clusterserviceclasses,clusterserviceplans
    kubectl wait --for=jsonpath='{.status.conditions[?(@.type=="Ready")].status}'=True \
      --timeout=120s serviceinstance/orders-db servicecredential/orders-db >/dev/null
    kubectl get serviceinstances,servicecredentials
    echo "Secret orders-db-credentials holds: $(kubectl get secret orders-db-credentials \
      -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}')"
    kubectl wait --for=jsonpath='{.status.conditions[?(@.type=="Ready")].status}'=True \
      --timeout=120s servicebinding/orders-db >/dev/null
    kubectl get podset orders -o jsonpath='{range .spec.template.spec.volumes[*]}{"  volume "}{.name}{" <- Secret "}{.projected.sources[0].secret.name}{"\n"}{end}'
    echo
    echo "Try: eval \"\$(make -s cluster-env)\"; kubectl delete pod -l app=web --wait=false; kubectl get pods -w"
    echo "Stop: make demo-down"
    ;;
  down)
    stop_operator
    stop_broker
    ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
