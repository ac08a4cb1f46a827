"""Course tools: student releases, solution markers, module status and grading."""
