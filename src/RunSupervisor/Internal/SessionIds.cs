using System.Runtime.CompilerServices;

namespace RunSupervisor;

/// <summary>Validation of session ids, shared by every public entry point.</summary>
internal static class SessionIds
{
    /// <summary>The longest accepted session id, in UTF-16 code units.</summary>
    public const int MaxLength = 256;

    public static void Validate(string? sessionId, [CallerArgumentExpression(nameof(sessionId))] string? paramName = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sessionId, paramName);
        if (sessionId.Length > MaxLength)
        {
            throw new ArgumentException($"A session id must be at most {MaxLength} characters long (was {sessionId.Length}).", paramName);
        }
    }
}
