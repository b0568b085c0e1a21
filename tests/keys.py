"""The secret keys tests sign cursors with: long enough for RestEngine (32 bytes at least), tests only."""

TEST_SECRET = "test-only-secret-key-0123456789abcdef"
"""What every app and subprocess the tests start uses, unless a test says otherwise."""

OTHER_SECRET = "another-test-secret-key-0123456789abcdef"
"""A second valid key, for what another deployment would have signed."""
