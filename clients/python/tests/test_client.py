"""The Python client against a real node (the built binary, tiny model, 127.0.0.1).

NEUROSHARD_BIN names the binary (make test builds it); without it the test builds one with go.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from neuroshard import NEUROLedger, NeuroNode, NeuroShardError  # noqa: E402

TOKEN = "python-client-test-token"


def binary(tmp):
    path = os.environ.get("NEUROSHARD_BIN")
    if path:
        return path
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    path = os.path.join(tmp, "neuroshard")
    subprocess.run(["go", "build", "-o", path, "./cmd/neuroshard"], cwd=root, check=True)
    return path


class NodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="neuroshard-py-")
        cmd = [binary(cls.tmp), "--host", "127.0.0.1", "--port", "0", "--data-dir", os.path.join(cls.tmp, "data"),
               "--token", TOKEN, "--train=false", "--bench=false", "--model", "neuroshard-tiny"]
        cls.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        cls.output = []
        found = threading.Event()
        cls.url = None

        def read():
            for line in cls.proc.stdout:
                cls.output.append(line)
                m = re.search(r"API:\s+(http://[0-9.:]+)/api/v1", line)
                if m and not found.is_set():
                    cls.url = m.group(1)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(60):
            cls.tearDownClass()
            raise RuntimeError("the node never said where its API is:\n" + "".join(cls.output))
        cls.node = NeuroNode(cls.url, api_token=TOKEN, timeout=60)
        deadline = time.time() + 30
        while True:
            try:
                if cls.node.health().healthy:
                    break
            except (NeuroShardError, OSError):
                pass
            if time.time() > deadline:
                raise RuntimeError("the node never became healthy")
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(20)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_status_names_the_node_and_its_layers(self):
        st = self.node.get_status()
        self.assertTrue(st.node_id.startswith("12D3KooW"), st.node_id)
        self.assertEqual(st.layers, [0, 1, 2, 3])
        self.assertEqual(st.model, "neuroshard-tiny")
        self.assertIsInstance(st.peer_count, int)
        self.assertIn(st.role, ("full", "driver", "worker", "validator"))
        with self.assertRaises(AttributeError):
            st.no_such_field

    def test_streamed_inference_is_the_whole_answer(self):
        whole = self.node.inference("ROMEO:", max_tokens=12, temperature=0)
        self.assertEqual(whole.usage.completion_tokens, 12)
        events = list(self.node.inference("ROMEO:", max_tokens=12, temperature=0, stream=True))
        self.assertTrue(events[-1].done)
        self.assertEqual(events[-1].finish_reason, "length")
        self.assertEqual(events[-1].usage.completion_tokens, 12)
        self.assertEqual("".join(e.token for e in events[:-1]), whole.text)

    def test_errors_carry_the_api_code(self):
        with self.assertRaises(NeuroShardError) as bad:
            self.node.inference("ROMEO:", max_tokens=-1)
        self.assertEqual((bad.exception.status, bad.exception.code), (400, "INVALID_REQUEST"))
        with self.assertRaises(NeuroShardError) as refused:
            NeuroNode(self.url, api_token="wrong").get_status()
        self.assertEqual((refused.exception.status, refused.exception.code), (401, "UNAUTHORIZED"))

    def test_ledger_amounts_are_exact_decimals(self):
        ledger = NEUROLedger(self.node)
        bal = ledger.get_balance()
        self.assertIsInstance(bal.available, (Decimal, int))
        self.assertEqual(Decimal(bal.total), Decimal(bal.available) + Decimal(bal.staked) + Decimal(bal.pending))
        with self.assertRaises(NeuroShardError) as e:
            ledger.send("0x" + "00" * 20, Decimal("0.0000001"))  # below the smallest unit
        self.assertEqual(e.exception.status, 400)
        with self.assertRaises(NeuroShardError) as e:
            ledger.send("not-an-address", 1)
        self.assertEqual(e.exception.code, "INVALID_REQUEST")

    def test_a_task_runs_to_its_result(self):
        task = self.node.submit_task("ROMEO:", max_tokens=6)
        deadline = time.time() + 60
        while True:
            t = self.node.get_task(task.task_id)
            if t.status in ("completed", "failed"):
                break
            self.assertLess(time.time(), deadline, "the task never finished")
            time.sleep(0.2)
        self.assertEqual(t.status, "completed", t.raw)
        self.assertTrue(t.result)


if __name__ == "__main__":
    unittest.main()
