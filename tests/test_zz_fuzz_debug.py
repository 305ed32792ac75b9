import subprocess, sys, collections
import pytest
from tests.test_admin_openapi import served, base_url, must_be_refused  # noqa
from tests.admin_harness import USER, PASSWORD

def test_debug(served):
    cmd=[sys.executable,"-m","schemathesis.cli","run",f"{base_url(served)}/api/v1/openapi.json","--auth",f"{USER}:{PASSWORD}","--checks","all","--exclude-checks","positive_data_acceptance","--phases","examples,coverage,fuzzing","--max-examples","60","--seed","20261122","--workers","1","--no-color","--generation-database","none"]
    r=subprocess.run(cmd,capture_output=True,text=True,timeout=600, cwd="/tmp")
    print(r.stdout[-5000:])
    reqs=served.simulator.requests
    print(collections.Counter((x.action, x.code) for x in reqs))
    creates=[x for x in reqs if x.action=="CreateVcoRouteEntry"]
    print(len(creates), [x.params.get("RouteDest") for x in creates][:20])
