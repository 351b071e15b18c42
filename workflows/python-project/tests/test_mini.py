from __future__ import annotations

import unittest

import mini


class GreetTest(unittest.TestCase):
    def test_greets_by_name(self) -> None:
        self.assertEqual(mini.greet("dagmake"), "hello, dagmake")


if __name__ == "__main__":
    unittest.main()
