using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace RunSupervisor.Redis.Tests;

public sealed class RedisRunLeaseStoreOptionsTests
{
    [Fact]
    public void Defaults_AreValid()
    {
        var options = new RedisRunLeaseStoreOptions();

        RedisRunLeaseStoreOptionsValidator.Instance.Validate(null, options).Succeeded.Should().BeTrue();
        options.KeyPrefix.Should().Be("runsupervisor");
        options.ChannelPrefix.Should().Be("runsupervisor");
        options.Database.Should().Be(-1);
        options.OperationTimeout.Should().Be(TimeSpan.FromSeconds(2));
        options.FenceRetention.Should().Be(TimeSpan.FromDays(7));
    }

    [Theory]
    [InlineData("KeyPrefix", "KeyPrefix must be 1 to 100 characters without '{' or '}' (was 'a{b')")]
    [InlineData("ChannelPrefix", "ChannelPrefix must be 1 to 100 characters without '{' or '}' (was '')")]
    [InlineData("Database", "Database must be -1 (the connection's default) or a database number (was -2)")]
    [InlineData("OperationTimeout", "OperationTimeout must be greater than 00:00:00 and at most 00:01:00 (was 00:00:00)")]
    [InlineData("FenceRetention", "FenceRetention must be between 00:01:00 and 365.00:00:00 (was 00:00:01)")]
    public void Validate_BadValue_NamesTheOptionAndItsRange(string option, string message)
    {
        var options = new RedisRunLeaseStoreOptions();
        switch (option)
        {
            case "KeyPrefix": options.KeyPrefix = "a{b"; break;
            case "ChannelPrefix": options.ChannelPrefix = string.Empty; break;
            case "Database": options.Database = -2; break;
            case "OperationTimeout": options.OperationTimeout = TimeSpan.Zero; break;
            default: options.FenceRetention = TimeSpan.FromSeconds(1); break;
        }

        ValidateOptionsResult result = RedisRunLeaseStoreOptionsValidator.Instance.Validate(null, options);

        result.Failed.Should().BeTrue();
        result.Failures.Should().ContainSingle().Which.Should().Contain(message);
    }

    [Fact]
    public void Constructor_InvalidOptions_ThrowsBeforeTouchingTheConnection()
    {
        var configuration = ConfigurationOptions.Parse("127.0.0.1:1");
        configuration.AbortOnConnectFail = false;
        configuration.ConnectTimeout = 200;
        using ConnectionMultiplexer multiplexer = ConnectionMultiplexer.Connect(configuration);

        Action create = () => _ = new RedisRunLeaseStore(multiplexer, new RedisRunLeaseStoreOptions { KeyPrefix = new string('k', 101) });

        create.Should().Throw<OptionsValidationException>().WithMessage("*KeyPrefix must be 1 to 100 characters*");
    }

    [Fact]
    public void Constructor_NullMultiplexer_Throws()
    {
        Action create = () => _ = new RedisRunLeaseStore(null!);

        create.Should().Throw<ArgumentNullException>().WithParameterName("multiplexer");
    }
}
