"""The dialing engine: the call budget, the supervisor and one actor per running campaign."""
