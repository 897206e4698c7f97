"""The wizard's screens, one file each, in order: hardware, data, plan, train, chat."""
