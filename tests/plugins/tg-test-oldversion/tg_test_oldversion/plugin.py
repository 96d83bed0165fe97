"""A test plugin built for hook-spec v1 (whose emitters returned text); tg-core 2 must refuse it unimported."""

raise AssertionError("tg imported a plugin whose hook-spec version it should have refused")
