import restengine


def test_public_surface_is_pinned() -> None:
    assert sorted(restengine.__all__) == [
        "Api",
        "ConfigError",
        "ResourceOptions",
        "Settings",
        "create_app",
        "load_settings",
    ]
    for name in restengine.__all__:
        assert getattr(restengine, name).__module__.startswith("restengine.")
