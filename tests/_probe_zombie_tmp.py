import signal, sys
sys.path.insert(0, "/work/main/tests")
from test_runner_replicas import *  # noqa
from test_runner_replicas import deployment  # noqa


def test_sigstop_zombie(deployment, tmp_path):
    bs, plan, replicas = deployment
    source, out_topic = plan.routes[0].topic, plan.runner("copy").outputs["out"]
    start_both(replicas)
    reader = TopicReader(bs, out_topic)
    try:
        produce(bs, source, [(f"r{i}", {"i": i}) for i in range(TOTAL)])
        read_until(reader, 600, 60)
        victim, survivor = replicas
        os.kill(victim.proc.pid, signal.SIGSTOP)
        assert wait_until(lambda: survivor.owned() == PARTITIONS, 30)
        time.sleep(1)
        os.kill(victim.proc.pid, signal.SIGCONT)
        check_exactly_once(bs, plan, reader)
    finally:
        reader.close()
