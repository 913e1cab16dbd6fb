async def test_call_limits(api):
    response = await api.get("/api/v1/call-limits")
    assert response.status_code == 200, response.text
    assert response.json() == {"concurrent_max": 10, "calls_per_minute": 60,
                               "daily_calls_max": None, "daily_minutes_max": None}
