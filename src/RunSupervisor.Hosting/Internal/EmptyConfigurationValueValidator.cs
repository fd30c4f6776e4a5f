using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace RunSupervisor.Hosting;

/// <summary>
/// Fails <see cref="RunSupervisorOptions"/> when a key of the section they are bound from has an empty value. The
/// configuration binder skips an empty value, so <c>"RunTimeout": ""</c> (or an environment variable set to nothing)
/// would otherwise silently mean the default: a value someone meant to set and did not. JSON <c>null</c> and an empty
/// object arrive as no value at all, the configuration system's "not set", and stay allowed: for options such as
/// <c>IdleTimeout</c> (off) and <c>Lanes</c> (none) that is exactly what they say.
/// </summary>
internal sealed class EmptyConfigurationValueValidator : IValidateOptions<RunSupervisorOptions>
{
    private readonly IConfigurationSection _section;

    public EmptyConfigurationValueValidator(IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(section);
        _section = section;
    }

    /// <summary>Gets the path of the section whose keys are checked, so that binding one section twice checks it once.</summary>
    public string Path => _section.Path;

    public ValidateOptionsResult Validate(string? name, RunSupervisorOptions options)
    {
        // The section is bound to the default options only.
        if (name != Microsoft.Extensions.Options.Options.DefaultName)
        {
            return ValidateOptionsResult.Skip;
        }

        // The section's own value is not an option: only its keys are.
        List<string>? failures = null;
        foreach (IConfigurationSection child in _section.GetChildren())
        {
            Collect(child, ref failures);
        }

        return failures is null ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void Collect(IConfigurationSection section, ref List<string>? failures)
    {
        bool hasChildren = false;
        foreach (IConfigurationSection child in section.GetChildren())
        {
            hasChildren = true;
            Collect(child, ref failures);
        }

        // A null value is a section without a value of its own (an empty JSON object): nothing was set, nothing is lost.
        if (!hasChildren && section.Value is { } value && string.IsNullOrWhiteSpace(value))
        {
            (failures ??= []).Add($"{section.Path} is empty: remove the key to use the default, or give it a value.");
        }
    }
}
