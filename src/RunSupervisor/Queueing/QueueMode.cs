namespace RunSupervisor;

/// <summary>How the host treats messages that arrive while a session's run is active.</summary>
public enum QueueMode
{
    /// <summary>Steer the message into the active run.</summary>
    Steer,

    /// <summary>Steer the message into the active run, keeping a backlog.</summary>
    SteerBacklog,

    /// <summary>Queue the message as a follow-up run.</summary>
    Followup,

    /// <summary>Collect messages and run them together when the session is idle.</summary>
    Collect,

    /// <summary>Interrupt the active run and run the message now.</summary>
    Interrupt,
}
